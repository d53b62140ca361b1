"""Combined corpora (`emodb+ravdess`, common labels) and the protocols that go with them:
`spk5` (5 speaker-disjoint folds, each corpus spread over all folds) and `all` (train on every clip)."""
import numpy as np
import pytest

from train import data, protocols


def speakers_of(fold, speakers):
    return set(speakers[fold.test].tolist())


def test_spk5_deals_each_corpus_over_all_folds():
    speakers = np.array([f"emodb:{s:02d}" for s in (3, 8, 9, 10, 11, 12, 13, 14, 15, 16) for _ in range(3)]
                        + [f"ravdess:{a:02d}" for a in range(1, 25) for _ in range(2)])
    labels = np.zeros(len(speakers), dtype=np.int64)
    folds = protocols.make_folds("spk5", labels, speakers)
    assert [f.name for f in folds] == [f"spk5-{i}" for i in range(1, 6)]
    tested = [speakers_of(f, speakers) for f in folds]
    assert set().union(*tested) == set(speakers.tolist())  # every speaker is tested once...
    assert sum(len(t) for t in tested) == 34  # ...and only once
    for fold, test in zip(folds, tested):
        assert not test & set(speakers[fold.train].tolist())
        assert sum(s.startswith("emodb:") for s in test) == 2
        assert sum(s.startswith("ravdess:") for s in test) in (4, 5)
    assert tested[0] == {"emodb:03", "emodb:12", "ravdess:01", "ravdess:06", "ravdess:11", "ravdess:16", "ravdess:21"}
    assert protocols.is_speaker_independent("spk5")


def test_cross_trains_on_one_corpus_and_tests_on_the_other():
    speakers = np.array(["emodb:03", "emodb:08", "ravdess:01", "ravdess:02", "ravdess:03"])
    folds = protocols.make_folds("cross", np.zeros(5, dtype=np.int64), speakers)
    assert [(f.name, f.train.tolist(), f.test.tolist()) for f in folds] == [
        ("ravdess->emodb", [2, 3, 4], [0, 1]), ("emodb->ravdess", [0, 1], [2, 3, 4])]
    assert protocols.is_speaker_independent("cross")
    with pytest.raises(ValueError, match="combined corpus"):
        protocols.make_folds("cross", np.zeros(2, dtype=np.int64), np.array(["03", "08"]))


def test_all_protocol_trains_on_every_clip():
    labels = np.array([0, 1, 2, 0])
    (fold,) = protocols.make_folds("all", labels, np.array(["a", "a", "b", "b"]))
    assert fold.name == "all" and fold.train.tolist() == [0, 1, 2, 3] and fold.test.tolist() == [0, 1, 2, 3]
    assert not protocols.is_speaker_independent("all")


def test_numeric_speakers_sort_numerically():
    speakers = np.array(["10", "2", "1"])
    folds = protocols.make_folds("loso", np.zeros(3, dtype=np.int64), speakers)
    assert [f.name for f in folds] == ["spk-1", "spk-2", "spk-10"]


def test_unknown_label_cannot_be_combined():
    corpus = data.Corpus("mine", [], ["anger", "contempt"])
    with pytest.raises(ValueError, match=r"mine: labels \['contempt'\] have no entry in the common label mapping"):
        data.harmonise(corpus)


def test_emodb_plus_ravdess(data_dir):
    corpus = data.load_corpus("emodb+ravdess", data_dir)
    assert corpus.name == "emodb+ravdess"
    assert corpus.labels == ["anger", "disgust", "fear", "happiness", "sadness", "neutral"]
    names = {c.path.name for c in corpus.clips}
    assert not any(n[5] == "L" for n in names if n.endswith(".wav"))  # EmoDB boredom dropped
    assert not any(n.split("-")[2] == "08" for n in names if n.endswith(".flac"))  # RAVDESS surprised dropped
    calm = [c for c in corpus.clips if c.path.name.split("-")[2:3] == ["02"]]
    assert calm and all(c.label == "neutral" for c in calm)
    assert len(set(corpus.speakers().tolist())) == 34
    assert len(corpus.clips) == 535 - 81 + 1440 - 192


def test_relabel_into_keeps_maps_or_drops_each_label(tmp_path):
    clips = [data.Clip(tmp_path / f"{i}.wav", label, "01") for i, label in
             enumerate(["calm", "surprise", "anger", "neutral", "happiness"])]
    ravdess = data.Corpus("ravdess", clips, list(data.RAVDESS_EMOTIONS.values()))
    emodb_labels = list(data.EMODB_EMOTIONS.values())
    into = data.relabel_into(ravdess, emodb_labels)
    assert into.labels == emodb_labels  # the evaluated corpus's class order, boredom included
    assert [c.label for c in into.clips] == ["neutral", "anger", "neutral", "happiness"]  # calm -> neutral, surprise dropped
    assert [c.path.name for c in into.clips] == ["0.wav", "2.wav", "3.wav", "4.wav"]
    emodb = data.Corpus("emodb", [data.Clip(tmp_path / "b.wav", "boredom", "03"),
                                  data.Clip(tmp_path / "w.wav", "anger", "03")], emodb_labels)
    assert [c.label for c in data.relabel_into(emodb, ravdess.labels).clips] == ["anger"]
    with pytest.raises(ValueError, match="no clip has a label"):
        data.relabel_into(emodb.subset([True, False]), ravdess.labels)
