"""`python -m train.encoders run|report ...`: frozen pretrained encoder + head baselines.

  run     one protocol for one encoder and head (resumes a run directory)
  report  collect run directories into benchmarks/results/NAME.{json,md}
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spin-waiting ruins 2-core machines

import argparse  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

from ..options import add_config_options, config_values  # noqa: E402

RESULTS_DIR = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def parser() -> argparse.ArgumentParser:
    from .baseline import BaselineConfig

    p = argparse.ArgumentParser(prog="python -m train.encoders", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="one protocol, one encoder and head")
    add_config_options(run, BaselineConfig)
    run.add_argument("--out", type=pathlib.Path, required=True, help="run directory (resumes if it exists)")
    run.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    rep = sub.add_parser("report", help="collect run directories into benchmarks/results/NAME.{json,md}")
    rep.add_argument("--name", required=True)
    rep.add_argument("--out-dir", type=pathlib.Path, default=RESULTS_DIR)
    rep.add_argument("runs", nargs="+", type=pathlib.Path)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            import torch

            from .baseline import BaselineConfig, run

            torch.set_num_threads(args.threads)
            summary = run(BaselineConfig(**config_values(args, BaselineConfig)), args.out, progress=lambda line: print(line, flush=True))
            print(f"{args.out}: pooled UA {100 * summary['pooled']['ua']:.1f}%, WA {100 * summary['pooled']['wa']:.1f}%")
        else:
            from .report import write_results

            print(write_results(args.name, args.runs, args.out_dir))
    except (ValueError, FileNotFoundError, ImportError) as error:  # ImportError: a weight wheel not installed
        print(f"python -m train.encoders: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
