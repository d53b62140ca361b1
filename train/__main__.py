"""`python -m train COMMAND ...`: fit | samsg | rollout | pretrain | ensemble | prior | shifts | noisy | reverb | enrolment | table | report. See docs/training.md."""
from __future__ import annotations

import os

# Must precede the torch import: OpenMP spin-waiting on a shared 2-core machine is ruinous.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

QUICK = {"epochs": 1, "continue_epochs": 1, "depth": 1, "dim": 32, "heads": 2, "max_folds": 2,
         "batch_size": 8}


def add_run_options(p: argparse.ArgumentParser, model: str, variants: str) -> None:
    from .run_config import RunConfig, patch_size

    d = RunConfig()
    p.add_argument("--data", default=None, help="data root (default: EDGE_SER_DATA or ../shared/data)")
    p.add_argument("--corpus", default=d.corpus, help="emodb | ravdess | path/to/manifest.csv | several joined by + (common labels)")
    p.add_argument("--protocol", default=d.protocol, choices=["loso", "groups4", "spk5", "sd10", "all"],
                   help="spk5: 5 speaker-disjoint folds (combined corpora); all: train on every clip, no test")
    p.add_argument("--model", default=model, choices=["cnn", "deit"])
    p.add_argument("--out", required=True, type=pathlib.Path, help="run directory (resumes if it exists)")
    p.add_argument("--variants", default=variants, help="comma list of none,random,samsg,samsg_speech (empty: one phase)")
    p.add_argument("--seconds", type=float, default=d.seconds)
    p.add_argument("--n-mels", type=int, default=d.n_mels)
    p.add_argument("--normalize", default=d.normalize, choices=["none", "utterance"],
                   help="utterance: z-score each band over the clip's own frames (the runtime does the same)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--ema", type=float, default=d.ema,
                   help="end phase 1 with the exponential moving average of the weights, this decay per step "
                        "(e.g. 0.99); 0 = the last step's weights")
    p.add_argument("--continue-epochs", type=int, default=d.continue_epochs)
    p.add_argument("--continue-lr", type=float, default=d.continue_lr)
    p.add_argument("--mask-ratio", type=float, default=d.mask_ratio)
    p.add_argument("--mask-fill", default=d.mask_fill, help='"mean" or a number (log-mel value)')
    p.add_argument("--head-fusion", default=d.head_fusion, choices=["mean", "max", "min"])
    p.add_argument("--patch", type=patch_size, default=d.patch)
    p.add_argument("--depth", type=int, default=d.depth)
    p.add_argument("--dim", type=int, default=d.dim)
    p.add_argument("--heads", type=int, default=d.heads)
    p.add_argument("--drop-path", type=float, default=d.drop_path)
    p.add_argument("--stem", default=d.stem, choices=["patch", "conv"],
                   help="DeiT token embedding: patch (linear, as DeiT) or conv (small conv stem, same 16x16 token grid)")
    p.add_argument("--freq-masks", type=int, default=d.freq_masks, help="SpecAugment frequency masks per clip")
    p.add_argument("--freq-mask-width", type=int, default=d.freq_mask_width, help="max mel bands per frequency mask")
    p.add_argument("--time-masks", type=int, default=d.time_masks, help="SpecAugment time masks per clip")
    p.add_argument("--time-mask-width", type=int, default=d.time_mask_width, help="max frames per time mask")
    p.add_argument("--freq-warp", type=float, default=d.freq_warp,
                   help="VTLP-style frequency warp: each training clip's bands rescaled in Hz by a factor "
                        "uniform in [1-W, 1+W]; 0 = off")
    p.add_argument("--mixup", type=float, default=d.mixup, help="mixup Beta(alpha, alpha); 0 = off")
    p.add_argument("--noise-train", default=None,
                   help="folder of noise recordings mixed into training clips (train.copies), e.g. "
                        "DATA/noise/background; test noise should come from another folder")
    p.add_argument("--noise-snr", type=snr_range, default=d.noise_snr, help="low,high dB of the training noise")
    p.add_argument("--reverb-train", type=rt60_range, default=None,
                   help="low,high RT60 (s) of simulated rooms training clips are put in (train.copies; before "
                        "any noise), e.g. 0.2,1.0")
    p.add_argument("--noise-p", type=float, default=d.noise_p,
                   help="chance that a drawn training clip is replaced by one of its degraded copies")
    p.add_argument("--noise-copies", type=int, default=d.noise_copies,
                   help="degraded copies made of each clip (on the waveform, through the extractor, once per run)")
    p.add_argument("--crop-seconds", type=float, default=d.crop_seconds,
                   help="train on random --seconds windows of clips fixed to this length (test: centre crop)")
    p.add_argument("--extra-train", default=None,
                   help="another labelled corpus added to every fold's training set (never tested on), "
                        "relabelled into this corpus's labels, e.g. --corpus emodb --extra-train ravdess")
    p.add_argument("--speaker-adversary", type=float, default=d.speaker_adversary,
                   help="weight of the confusion loss against a speaker classifier on the embedding (train.adversary; 0 = off; not with --mixup)")
    p.add_argument("--speaker-norm", action="store_true",
                   help="z-score each speaker's clips over its own clips (uses test speakers' unlabelled audio: "
                        "report apart)")
    p.add_argument("--speaker-norm-labels", default="",
                   help="with --speaker-norm: each speaker's statistics from its clips of these labels only, "
                        "e.g. neutral (what a user could record at set-up)")
    p.add_argument("--init-from", default=None,
                   help="local checkpoint to start from (its head stays fresh): a train run's checkpoint "
                        "(runs/RUN/checkpoints/FOLD/phase1.pt) of the same model, or for DeiT a timm ViT state dict")
    p.add_argument("--distil-from", default=None,
                   help="a finished run or ensemble of this protocol: distil from its per-fold predictions on "
                        "the training clips (train.distil; the same clips and features)")
    p.add_argument("--distil-views", type=int, default=d.distil_views,
                   help="with --distil-from: train on this many augmented views of each clip (time shift, plus "
                        "--freq-masks/--time-masks), each with the teacher's targets on that view; --epochs then "
                        "counts passes over all the views")
    p.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs,
                   help="DeiT: MAE pretraining epochs per fold on the training speakers' audio first")
    p.add_argument("--pretrain-lr", type=float, default=d.pretrain_lr)
    p.add_argument("--pretrain-extra", default=None, help="folder of more unlabelled audio for the pretraining")
    p.add_argument("--phase1-from", default=None, help="reuse the phase-1 checkpoints of this run directory")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--max-folds", type=int, default=None)
    p.add_argument("--folds", default="", help="comma list of fold names to train in this process, e.g. to run "
                   "the folds of one run directory in two processes at once (default: all)")
    p.add_argument("--cache", default=None, help="feature cache folder (default <repo>/.cache/features)")
    p.add_argument("--quick", action="store_true", help="a few clips, tiny model, 1 epoch (tests)")
    p.add_argument("--no-progress", action="store_true")


def run_config(args: argparse.Namespace):
    from .run_config import VARIANTS, RunConfig

    variants = tuple(v for v in args.variants.split(",") if v)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"error: unknown variants {sorted(unknown)}: use {','.join(VARIANTS)}")
    if variants and args.model != "deit":
        raise SystemExit("error: masking variants need --model deit (rollout needs attention)")
    if args.stem != "patch" and args.model != "deit":
        raise SystemExit("error: --stem is a DeiT option (--model deit)")
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig) if hasattr(args, f.name)}
    values.update(variants=variants, progress=not args.no_progress,
                  speaker_norm_labels=tuple(v.strip() for v in args.speaker_norm_labels.split(",") if v.strip()),
                  only_folds=tuple(f.strip() for f in args.folds.split(",") if f.strip()))
    if args.quick:
        values.update(QUICK)
    return RunConfig(**values)


def cmd_run(args: argparse.Namespace) -> None:
    from .run import run

    summaries = run(run_config(args), args.out)
    for name, s in summaries.items():
        print(f"{name}: UA {100 * s['pooled']['ua']:.1f}% WA {100 * s['pooled']['wa']:.1f}% "
              f"F1 {100 * s['pooled']['macro_f1']:.1f}% (fold UA {100 * s['fold_mean']['ua']:.1f}"
              f"±{100 * s['fold_std']['ua']:.1f}, {s['n_folds']} folds)")


def cmd_rollout(args: argparse.Namespace) -> None:
    from .render import render_rollout

    render_rollout(args.run, args.fold, args.checkpoint, args.audio, args.png, args.head_fusion)
    print(args.png)


def cmd_pauses(args: argparse.Namespace) -> None:
    import torch

    from .pauses import write_pauses

    torch.set_num_threads(args.threads)
    print(write_pauses(args.name, args.runs, args.out, args.data))


def cmd_pretrain(args: argparse.Namespace) -> None:
    from .pretrain import pretrain_main

    pretrain_main(args)


def cmd_enrolment(args: argparse.Namespace) -> None:
    from .enrolment import ALL, enrolment_scores, write_enrolment_report

    try:
        ks = tuple(sorted({int(k) for k in args.clips.split(",")}))
    except ValueError:
        raise SystemExit(f"error: --clips must be a comma list of positive integers, got {args.clips!r}") from None
    if not ks or ks[0] < 1 or args.repeats < 1:
        raise SystemExit(f"error: --clips needs positive counts and --repeats >= 1, got {args.clips!r}, {args.repeats}")
    labels = tuple(label.strip() for label in args.enrol_labels.split(",") if label.strip())
    result = enrolment_scores(args.run, args.baseline, ks, args.repeats, args.seed, args.data, labels)
    path = write_enrolment_report(result, args.name, args.out)
    for name, s in result["sets"].items():
        print(f"{name if name != ALL else 'all clips'}: UA {100 * sum(s['ua']) / len(s['ua']):.1f}%")
    print(f"wrote {path}")


def cmd_ensemble(args: argparse.Namespace) -> None:
    from .ensemble import ensemble

    s = ensemble(args.runs, args.out, args.result_set)
    print(f"ensemble of {len(args.runs)}: UA {100 * s['pooled']['ua']:.1f}% WA {100 * s['pooled']['wa']:.1f}% "
          f"(fold UA {100 * s['fold_mean']['ua']:.1f}±{100 * s['fold_std']['ua']:.1f}, {s['n_folds']} folds)")


def cmd_prior(args: argparse.Namespace) -> None:
    from .decision import decide_with_prior

    def one(run: pathlib.Path) -> str:
        s = decide_with_prior(run, args.result_set)
        return f"{run}: prior-corrected UA {100 * s['pooled']['ua']:.1f}% WA {100 * s['pooled']['wa']:.1f}%"

    each_run(args.runs, one)


def cmd_shifts(args: argparse.Namespace) -> None:
    from .shifts import SHIFTS, average_over_shifts

    def one(run: pathlib.Path) -> str:
        s = average_over_shifts(run, args.shifts or SHIFTS, args.data)
        return (f"{run}: averaged over shifts UA {100 * s['pooled']['ua']:.1f}% WA {100 * s['pooled']['wa']:.1f}% "
                f"(fold UA {100 * s['fold_mean']['ua']:.1f}±{100 * s['fold_std']['ua']:.1f})")

    each_run(args.runs, one)


def sets_line(run: pathlib.Path, sets: dict[str, dict]) -> str:
    return f"{run}: " + ", ".join(f"{name} UA {100 * s['pooled']['ua']:.1f}% WA {100 * s['pooled']['wa']:.1f}%"
                                  for name, s in sets.items())


def cmd_noisy(args: argparse.Namespace) -> None:
    from .data import default_data_root
    from .degraded import SNRS, score_in_noise
    from .run_dir import read_run_config

    def one(run: pathlib.Path) -> str:
        root = args.data or read_run_config(run)["run"].get("data") or default_data_root()
        return sets_line(run, score_in_noise(run, args.noise or pathlib.Path(root) / "noise" / "household",
                                             args.snrs or SNRS, args.seed, args.data))

    each_run(args.runs, one)


def cmd_reverb(args: argparse.Namespace) -> None:
    from .degraded import RT60S, score_in_rooms

    each_run(args.runs, lambda run: sets_line(run, score_in_rooms(run, args.rt60 or RT60S, args.seed, args.data)))


def cmd_table(args: argparse.Namespace) -> None:
    from .runs_table import write_table

    try:
        print(write_table(args.name, args.what, args.runs, [s for s in args.result_sets.split(",") if s], args.out))
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None


def rescoring_args(p: argparse.ArgumentParser, func, seed_help: str) -> None:
    """What the commands that re-score finished runs on degraded clips share."""
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--data", default=None, help="data root (default: the run's, EDGE_SER_DATA or ../shared/data)")
    p.add_argument("runs", nargs="+", type=pathlib.Path)
    p.set_defaults(func=func)


def value_list(text: str, kind, what: str, positive: bool = False) -> tuple[float, ...]:
    """"20,10,0" -> (20.0, 10.0, 0.0): finite (and > 0 if `positive`), each naming its own
    result set of Degradation `kind`."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and (v > 0 or not positive) for v in values) \
            or len({kind.name(v) for v in values}) != len(values):
        raise argparse.ArgumentTypeError(f"{what} must be a comma list of distinct finite "
                                         f"{'positive ' if positive else ''}numbers, got {text!r}")
    return values


def value_range(text: str, what: str, positive: bool = False) -> tuple[float, float]:
    """"0.2,1.0" -> (0.2, 1.0): two finite numbers, low <= high (and low > 0 if `positive`)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        low = high = float("nan")
    if not (math.isfinite(low) and math.isfinite(high) and low <= high and (low > 0 or not positive)):
        raise argparse.ArgumentTypeError(f"{what} must be LOW,HIGH: two finite numbers, low <= high"
                                         f"{', low above 0' if positive else ''}; got {text!r}")
    return low, high


def snr_range(text: str) -> tuple[float, float]:
    return value_range(text, "the SNR range (dB)")


def rt60_range(text: str) -> tuple[float, float]:
    return value_range(text, "the RT60 range (s)", positive=True)


def snr_list(text: str) -> tuple[float, ...]:
    """"20,10,0" -> (20.0, 10.0, 0.0) dB."""
    from .result_sets import NOISE

    return value_list(text, NOISE, "SNRs (dB)")


def rt60_list(text: str) -> tuple[float, ...]:
    """"0.3,0.6" -> (0.3, 0.6) seconds."""
    from .result_sets import REVERB

    return value_list(text, REVERB, "RT60s (s)", positive=True)


def each_run(runs: list[pathlib.Path], one) -> None:
    """`one(run)` -> a line, for every run; a run that fails (bad input, a checkpoint that does not
    load, an unreadable clip or noise file) is reported in one line and the rest still run; exits
    1 if any failed."""
    from edge_ser.errors import EdgeSerError

    failed = []
    for run in runs:
        try:
            print(one(run), flush=True)
        except (ValueError, FileNotFoundError, RuntimeError, EdgeSerError) as error:
            message = str(error) if str(run) in str(error) else f"{run}: {error}"
            print(f"error: {message}", file=sys.stderr, flush=True)
            failed.append(str(run))
    if failed:
        raise SystemExit(f"error: {len(failed)} of {len(runs)} runs failed: {', '.join(failed)}")


def shift_list(text: str) -> tuple[int, ...]:
    """"-20,0,20" -> (-20, 0, 20) frames."""
    try:
        shifts = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shifts must be a comma list of integers (frames), got {text!r}") from None
    return shifts


def cmd_report(args: argparse.Namespace) -> None:
    from .report import write_report

    only = tuple(v.strip() for v in args.result_sets.split(",") if v.strip())
    print(write_report(args.name, args.runs, args.out, args.pair, only, not args.no_confusion))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="train and evaluate a model under a protocol")
    add_run_options(fit, "cnn", "")
    fit.set_defaults(func=cmd_run)
    samsg = sub.add_parser("samsg", help="DeiT, then continue with no/random/SAMSG masking")
    add_run_options(samsg, "deit", "none,random,samsg")
    samsg.set_defaults(func=cmd_run)
    ro = sub.add_parser("rollout", help="render a spectrogram with its attention-rollout map (PNG)")
    ro.add_argument("--run", type=pathlib.Path, required=True, help="run directory of a DeiT run")
    ro.add_argument("--fold", required=True, help="fold name, e.g. spk-03")
    ro.add_argument("--checkpoint", default="phase1", help="phase1 | none | random | samsg")
    ro.add_argument("--audio", type=pathlib.Path, required=True)
    ro.add_argument("--png", type=pathlib.Path, required=True)
    ro.add_argument("--head-fusion", default="mean", choices=["mean", "max", "min"])
    ro.set_defaults(func=cmd_rollout)
    pau = sub.add_parser("pauses", help="where SAMSG runs' masks fall: speech or pauses (VAD), per fold "
                         "(benchmarks/results/NAME.{json,md}; train/pauses.py)")
    pau.add_argument("--name", required=True)
    pau.add_argument("--data", default=None, help="data root (default: the run's, EDGE_SER_DATA or ../shared/data)")
    pau.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results"))
    pau.add_argument("--threads", type=int, default=1)
    pau.add_argument("runs", nargs="+", type=pathlib.Path)
    pau.set_defaults(func=cmd_pauses)
    pre = sub.add_parser("pretrain", help="MAE-style masked-spectrogram pretraining of the DeiT encoder")
    from .pretrain import add_pretrain_options

    add_pretrain_options(pre)
    pre.set_defaults(func=cmd_pretrain)
    enr = sub.add_parser("enrolment", help="re-score a --speaker-norm run with statistics from k clips per test speaker")
    enr.add_argument("--run", required=True, type=pathlib.Path, help="a finished --speaker-norm run directory")
    enr.add_argument("--baseline", action="append", default=[], type=pathlib.Path,
                     help="a plain run of the same protocol, scored on the same clips (repeatable)")
    enr.add_argument("--clips", default="1,3,5,10", help="enrolment clip counts k (comma list)")
    enr.add_argument("--enrol-labels", default="", help="draw enrolment clips from these labels only, e.g. "
                     "neutral (a user's first minutes); default: all clips")
    enr.add_argument("--repeats", type=int, default=5, help="random enrolment draws per speaker")
    enr.add_argument("--seed", type=int, default=0)
    enr.add_argument("--data", default=None, help="data root (default: the run's, EDGE_SER_DATA or ../shared/data)")
    enr.add_argument("--name", required=True, help="report file stem, e.g. emodb_loso_enrolment")
    enr.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results"))
    enr.set_defaults(func=cmd_enrolment)
    ens = sub.add_parser("ensemble", help="average the class probabilities of finished runs (same protocol)")
    ens.add_argument("--out", required=True, type=pathlib.Path, help="directory for the ensemble's results")
    ens.add_argument("--result-set", default="single", help="which result set of each run (single, samsg, ...)")
    ens.add_argument("runs", nargs="+", type=pathlib.Path)
    ens.set_defaults(func=cmd_ensemble)
    pri = sub.add_parser("prior", help="re-decide finished runs with their training folds' class prior "
                         "(result set `prior`, for WA)")
    pri.add_argument("--result-set", default=None, choices=["shifts"],
                     help="re-decide this result set (written as SET_prior) instead of single/ensemble")
    pri.add_argument("runs", nargs="+", type=pathlib.Path)
    pri.set_defaults(func=cmd_prior)
    shi = sub.add_parser("shifts", help="average finished runs' fold models over time shifts of each test clip "
                         "(result set `shifts`; train/shifts.py)")
    shi.add_argument("--shifts", type=shift_list, default=None, help="frames, comma list (default -20,-10,0,10,20)")
    shi.add_argument("--data", default=None, help="data root (default: the run's, EDGE_SER_DATA or ../shared/data)")
    shi.add_argument("runs", nargs="+", type=pathlib.Path)
    shi.set_defaults(func=cmd_shifts)
    noi = sub.add_parser("noisy", help="re-score finished runs' fold models on their test clips mixed with recorded "
                         "noise (result sets noisy_<snr>db; train/degraded.py)")
    noi.add_argument("--noise", type=pathlib.Path, default=None,
                     help="folder of noise recordings (default: DATA/noise/household)")
    noi.add_argument("--snrs", type=snr_list, default=None, help="dB, comma list (default 20,10,5,0)")
    rescoring_args(noi, cmd_noisy, "which noise file and offset each clip gets")
    rev = sub.add_parser("reverb", help="re-score finished runs' fold models on their test clips in simulated "
                         "reverberant rooms (result sets reverb_<rt60>s; train/degraded.py, train/reverb.py)")
    rev.add_argument("--rt60", type=rt60_list, default=None, help="seconds, comma list (default 0.3,0.6,0.9)")
    rescoring_args(rev, cmd_reverb, "which random room tail each clip gets")
    tab = sub.add_parser("table", help="each run's pooled UA in each result set, and means per corpus "
                         "(benchmarks/results/NAME.{json,md}; train/runs_table.py)")
    tab.add_argument("--name", required=True)
    tab.add_argument("--what", required=True, help="one sentence: which runs, scored how")
    tab.add_argument("--result-sets", required=True, help="comma list, e.g. single,reverb_0.3s,reverb_0.6s")
    tab.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results"))
    tab.add_argument("runs", nargs="+", type=pathlib.Path)
    tab.set_defaults(func=cmd_table)
    rep = sub.add_parser("report", help="collect run directories into benchmarks/results/NAME.{json,md}")
    rep.add_argument("--name", required=True, help="e.g. emodb_loso")
    rep.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results"))
    rep.add_argument("--pair", action="append", default=[], metavar="RUN=BASELINE",
                     help="also table RUN's fold UA/WA minus BASELINE's on common folds (repeatable; each side "
                          "optionally RUN:RESULT_SET, e.g. runs/x:prior)")
    rep.add_argument("--result-sets", default="", help="comma list: report only these result sets "
                     "(e.g. single,prior,noisy_10db; default: all found)")
    rep.add_argument("--no-confusion", action="store_true",
                     help="write no confusion PNGs (reports of many runs; the JSON keeps every matrix)")
    rep.add_argument("runs", nargs="+", type=pathlib.Path)
    rep.set_defaults(func=cmd_report)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    except Exception as error:
        from edge_ser.errors import EdgeSerError

        if isinstance(error, EdgeSerError):
            raise SystemExit(f"error: {error}") from None
        raise


if __name__ == "__main__":
    sys.exit(main())
