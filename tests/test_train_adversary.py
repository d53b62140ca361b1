"""The speaker adversary: each player's loss reaches only its own parameters, the schedule, and
that it lives only in training (the classifier's state dict and forward pass are unchanged)."""
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (the train extra)")

from train import loop, models  # noqa: E402
from train.adversary import SpeakerAdversary, ramp, speaker_ids  # noqa: E402


def test_each_player_gets_only_its_own_gradient():
    torch.manual_seed(0)
    adversary = SpeakerAdversary(8, 3)
    speakers = torch.tensor([0, 1, 2, 1])
    grads = {}
    for weight in (0.0, 1.0):
        embedding = torch.randn(4, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
        adversary.zero_grad()
        adversary.loss(embedding, speakers, weight).backward()
        grads[weight] = (embedding.grad.clone(), [p.grad.clone() for p in adversary.parameters()])
    assert torch.count_nonzero(grads[0.0][0]) == 0  # its own cross-entropy does not train the encoder
    assert torch.count_nonzero(grads[1.0][0]) > 0  # the confusion term does
    step = torch.randn(4, 8, generator=torch.Generator().manual_seed(1)) - 0.1 * grads[1.0][0]
    confusion = lambda z: -adversary(z).log_softmax(dim=1).mean()  # noqa: E731 (cross-entropy to uniform, x 1/S)
    start = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    assert confusion(step) < confusion(start)  # descending it moves the adversary's output towards uniform
    for own, with_confusion in zip(grads[0.0][1], grads[1.0][1]):
        assert torch.equal(own, with_confusion)  # and never trains the adversary


def test_confusion_is_minimal_when_the_adversary_cannot_tell_speakers():
    adversary = SpeakerAdversary(8, 4)
    torch.nn.init.zeros_(adversary.mlp[2].weight)
    torch.nn.init.zeros_(adversary.mlp[2].bias)  # uniform output for any embedding
    loss = adversary.loss(torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 0]), 1.0)
    assert loss.item() == pytest.approx(2 * torch.log(torch.tensor(4.0)).item())  # own CE + confusion, both log 4


def test_ramp_rises_from_zero_to_the_weight():
    values = [ramp(p / 10, 0.5) for p in range(11)]
    assert values[0] == 0 and values == sorted(values) and 0.49 < values[-1] <= 0.5


def test_speaker_ids_are_dense_and_sorted_by_name():
    assert speaker_ids(["b", "a", "c", "a"]).tolist() == [1, 0, 2, 0]


def test_fit_with_an_adversary_trains_the_classifier_only():
    x = torch.randn(12, 64, 64, generator=torch.Generator().manual_seed(0))
    y, speakers = torch.arange(12) % 2, torch.arange(12) % 3
    trained = {}
    for weight in (1e-12, 1.0):  # both build the adversary (same random stream); only the confusion differs
        torch.manual_seed(0)
        model = models.build("cnn", 2, (64, 64))
        keys = list(model.state_dict())
        loop.fit(model, x, y, 2, epochs=2, lr=1e-3, progress=False, speakers=speakers, adversary_weight=weight)
        assert list(model.state_dict()) == keys  # the adversary is not part of the model
        trained[weight] = [p.detach().clone() for p in model.parameters()]
    assert any(not torch.allclose(a, b) for a, b in zip(*trained.values()))  # the confusion loss reached the encoder
    with pytest.raises(ValueError, match="no mixup"):
        from train.augment import Augmentation

        loop.fit(model, x, y, 2, epochs=1, lr=1e-3, progress=False, speakers=speakers, adversary_weight=1.0,
                 augmentation=Augmentation(mixup_alpha=0.2))


def test_cli_refuses_an_adversary_with_mixup_in_one_line(tmp_path):
    from train.__main__ import main

    with pytest.raises(SystemExit, match="--speaker-adversary 1.0: needs a weight > 0 and no --mixup"):
        main(["fit", "--quick", "--out", str(tmp_path / "r"), "--speaker-adversary", "1", "--mixup", "0.2",
              "--no-progress"])


def test_training_speakers_tell_corpora_apart_and_skip_the_test_speakers():
    import pathlib

    import numpy as np

    from train.data import Clip, Corpus
    from train.protocols import Fold
    from train.run import AddedClips, training_speakers

    def corpus(name, speakers):
        return Corpus(name, [Clip(pathlib.Path(f"{name}{i}.wav"), "anger", s) for i, s in enumerate(speakers)], ["anger"])

    own = corpus("emodb", ["03", "08", "03", "09"])
    extra = corpus("ravdess", ["03", "03"])  # the same name in another corpus is another voice
    fold = Fold("spk-09", np.array([0, 1, 2]), np.array([3]))
    added = AddedClips(extra, torch.zeros(2, 1, 1), torch.zeros(2, dtype=torch.int64))
    assert training_speakers(own, fold, None).tolist() == [0, 1, 0]
    assert training_speakers(own, fold, added).tolist() == [0, 1, 0, 2, 2]


def test_a_cropping_deit_takes_an_adversary():
    torch.manual_seed(0)
    model = models.build("deit", 2, (64, 32), patch=(16, 16), depth=1, dim=32, heads=2)
    x = torch.randn(6, 64, 48)  # longer clips, cropped to the model's 32 frames per batch
    loop.fit(model, x, torch.arange(6) % 2, 2, epochs=1, lr=1e-3, progress=False, crop_frames=32,
             speakers=torch.arange(6) % 3, adversary_weight=1.0)
