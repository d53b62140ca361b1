"""`python -m train COMMAND ...`: fit | samsg | rollout | pretrain | ensemble | prior | shifts | noisy | reverb | enrolment | table | report. See docs/training.md."""
from __future__ import annotations

import os

# Must precede the torch import: OpenMP spin-waiting on a shared 2-core machine is ruinous.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

from .options import add_config_options, config_values, rt60_list, shift_list, snr_list  # noqa: E402

QUICK = {"epochs": 1, "continue_epochs": 1, "depth": 1, "dim": 32, "heads": 2, "max_folds": 2,
         "batch_size": 8}


def add_run_options(p: argparse.ArgumentParser, model: str, variants: tuple[str, ...]) -> None:
    """Every RunConfig field as an option (train.options), and the run directory."""
    from .run_config import RunConfig

    add_config_options(p, RunConfig, defaults={"model": model, "variants": variants})
    p.add_argument("--out", required=True, type=pathlib.Path, help="run directory (resumes if it exists)")


def run_config(args: argparse.Namespace):
    from .run_config import RunConfig

    if args.variants and args.model != "deit":
        raise SystemExit("error: masking variants need --model deit (rollout needs attention)")
    if args.stem != "patch" and args.model != "deit":
        raise SystemExit("error: --stem is a DeiT option (--model deit)")
    values = config_values(args, RunConfig)
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


def cmd_report(args: argparse.Namespace) -> None:
    from .report import write_report

    only = tuple(v.strip() for v in args.result_sets.split(",") if v.strip())
    print(write_report(args.name, args.runs, args.out, args.pair, only, not args.no_confusion))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="train and evaluate a model under a protocol")
    add_run_options(fit, "cnn", ())
    fit.set_defaults(func=cmd_run)
    samsg = sub.add_parser("samsg", help="DeiT, then continue with no/random/SAMSG masking")
    add_run_options(samsg, "deit", ("none", "random", "samsg"))
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
