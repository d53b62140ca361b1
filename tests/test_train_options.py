"""Options generated from configuration dataclasses (train.options): one place to add one."""
import argparse
import dataclasses

import pytest

pytest.importorskip("torch")

from train import options  # noqa: E402
from train.__main__ import parser, run_config  # noqa: E402
from train.run_config import PHASE1_FIELDS, RESUME_FIELDS, RunConfig  # noqa: E402


def test_every_run_field_has_help_and_an_option():
    fit = parser()._subparsers._group_actions[0].choices["fit"]
    dests = {action.dest for action in fit._actions}
    for field in dataclasses.fields(RunConfig):
        assert field.metadata.get("help"), f"RunConfig.{field.name} has no help text"
        assert field.name in dests, f"RunConfig.{field.name} has no command-line option"


def test_defaults_reach_the_config_unchanged():
    assert run_config(parser().parse_args(["fit", "--out", "x"])) == RunConfig()
    samsg = run_config(parser().parse_args(["samsg", "--out", "x"]))
    assert samsg == dataclasses.replace(RunConfig(), model="deit", variants=("none", "random", "samsg"))


def test_parsed_values_and_switches():
    cfg = run_config(parser().parse_args(["samsg", "--out", "x", "--variants", "none,samsg_speech", "--patch", "64x4",
                                          "--folds", "spk-03, spk-08", "--no-progress", "--speaker-norm",
                                          "--noise-snr", "5,15", "--crop-seconds", "3"]))
    assert cfg.variants == ("none", "samsg_speech") and cfg.patch == (64, 4)
    assert cfg.only_folds == ("spk-03", "spk-08") and not cfg.progress and cfg.speaker_norm
    assert cfg.noise_snr == (5.0, 15.0) and cfg.crop_seconds == 3.0


@pytest.mark.parametrize("argv", [["--variants", "none,bogus"], ["--patch", "16"], ["--noise-snr", "20,0"],
                                  ["--reverb-train", "0,1"], ["--protocol", "kfold"]])
def test_bad_values_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        parser().parse_args(["samsg", "--out", "x", *argv])
    assert stop.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_match_metadata_gives_the_resume_fields():
    # Exactly the hand-kept lists these replaced: a dropped `match=` would let a resume mix settings.
    assert set(PHASE1_FIELDS) == {
        "corpus", "protocol", "model", "seconds", "n_mels", "epochs", "lr", "weight_decay", "batch_size",
        "warmup_epochs", "patch", "depth", "dim", "heads", "drop_path", "stem", "init_from", "pretrain_epochs",
        "pretrain_lr", "pretrain_extra", "seed", "quick", "freq_masks", "freq_mask_width", "time_masks",
        "time_mask_width", "mixup", "crop_seconds", "extra_train", "speaker_norm", "speaker_norm_labels", "normalize",
        "freq_warp", "speaker_adversary", "distil_from", "distil_views", "ema", "noise_train", "noise_snr", "noise_p",
        "noise_copies", "reverb_train"}
    assert set(RESUME_FIELDS) - set(PHASE1_FIELDS) == {"variants", "continue_epochs", "continue_lr", "mask_ratio",
                                                       "mask_fill", "head_fusion", "phase1_from", "max_folds"}


def test_generated_options_of_any_config():
    @dataclasses.dataclass
    class Config:
        size: int = options.option(3, "a size", match="phase1")
        name: str | None = options.option(None, "a name")
        on: bool = options.option(True, "a switch")
        pair: tuple[float, float] = options.option((1.0, 2.0), "a range", parse=options.snr_range)
        hidden: int = options.option(0, "not an option", cli=False)

    p = argparse.ArgumentParser()
    options.add_config_options(p, Config, defaults={"size": 5})
    args = p.parse_args(["--no-on", "--pair", "0,10"])
    assert options.config_values(args, Config) == {"size": 5, "name": None, "on": False, "pair": (0.0, 10.0)}
    assert options.fields_matching(Config, "resume") == ("size",)
    with pytest.raises(ValueError, match="match"):
        options.option(1, "x", match="sometimes")
    with pytest.raises(ValueError, match="no fields"):
        options.add_config_options(argparse.ArgumentParser(), Config, only=("size", "colour"))

    @dataclasses.dataclass
    class Unparsable:
        pair: tuple[int, int] = options.option((1, 2), "no parser")

    with pytest.raises(TypeError, match="parse"):
        options.add_config_options(argparse.ArgumentParser(), Unparsable)
