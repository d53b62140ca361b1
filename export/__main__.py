"""`python -m export COMMAND ...`: teacher | distill | prune | onnx | quantize | tflite | fold | loso |
report | default (the packaged CNN model's whole recipe) | encoder (a fusion run's model to ONNX/INT8, scored) | package (choose and ship default and tiny) |
calibrate (their softmax temperature). Each model step reads a model file and writes
one plus its `.card.json`. See docs/export.md and docs/default-model.md."""
from __future__ import annotations

import os

# Must precede the torch import: OpenMP spin-waiting on a shared 2-core machine is ruinous.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402


def widths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must look like 16,32,64,128, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    from . import distill as kd
    from . import quantize, steps, tflite

    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("teacher", help="wrap a training checkpoint as an export model file")
    p.add_argument("--run", required=True, type=pathlib.Path, help="training run directory (runs/<run>)")
    p.add_argument("--fold", required=True)
    p.add_argument("--variant", default=None, help="checkpoint name: samsg | none | random | phase1 "
                   "(default: samsg for a run with masking variants, else phase1)")
    p.add_argument("--out", required=True, type=pathlib.Path)

    p = sub.add_parser("distill", help="teacher .pt -> CNN student .pt")
    p.add_argument("--teacher", required=True, type=pathlib.Path)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--widths", type=widths, default=steps.STUDENT_WIDTHS)
    p.add_argument("--epochs", type=int, default=kd.EPOCHS)
    p.add_argument("--temperature", type=float, default=kd.TEMPERATURE)
    p.add_argument("--alpha", type=float, default=kd.ALPHA, help="soft-target weight; 0 = labels only")

    p = sub.add_parser("prune", help=".pt -> pruned .pt, fine-tuned from the teacher")
    p.add_argument("--model", required=True, type=pathlib.Path)
    p.add_argument("--teacher", required=True, type=pathlib.Path)
    p.add_argument("--out", required=True, type=pathlib.Path)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--keep", type=float, help="structured: fraction of channels / heads / MLP units kept")
    group.add_argument("--sparsity", type=float, help="unstructured: fraction of weights zeroed")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")

    p = sub.add_parser("onnx", help=".pt -> FP32 .onnx")
    p.add_argument("--model", required=True, type=pathlib.Path)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--no-optimise", action="store_true", help="skip the onnxruntime graph optimisation pass")

    p = sub.add_parser("quantize", help="FP32 .onnx -> INT8 .onnx")
    p.add_argument("--model", required=True, type=pathlib.Path)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--mode", choices=("static", "dynamic"), default="static")
    p.add_argument("--method", choices=quantize.CALIBRATION_METHODS, default="minmax")
    p.add_argument("--activations", choices=quantize.ACTIVATION_TYPES, default="u8")
    p.add_argument("--keep-float", choices=quantize.KEEP_FLOAT, default="none",
                   help="static: leave the first conv (first) or the first conv and the head (edges) in float")
    p.add_argument("--weight-bits", type=int, choices=quantize.WEIGHT_BITS, default=7,
                   help="static: 7 (default) is right on every CPU; 8-bit weights saturate on x86 with AVX2 "
                        "but no VNNI (export.quantize)")

    p = sub.add_parser("tflite", help=".pt -> .tflite (FP32 or INT8)")
    p.add_argument("--model", required=True, type=pathlib.Path)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--int8", action="store_true")
    p.add_argument("--reference", type=pathlib.Path, help="ONNX file to compare with (default: PyTorch)")
    p.add_argument("--keep-float", choices=tflite.KEEP_FLOAT, default="none",
                   help="INT8: leave the first conv (first) or the first conv and the head (edges) in float")
    p.add_argument("--observer", choices=tflite.OBSERVERS, default="histogram", help="INT8: activation ranges")

    for name, text in (("fold", "the whole chain on one fold"), ("loso", "the whole chain on every trained fold")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--run", required=True, type=pathlib.Path)
        p.add_argument("--variant", default=None, help="checkpoint name (default: samsg for a run with masking "
                       "variants, else phase1)")
        p.add_argument("--out", required=True, type=pathlib.Path, help="output root (one folder per fold)")
        if name == "fold":
            p.add_argument("--fold", required=True)
        else:
            p.add_argument("--folds", help="comma-separated subset (default: every fold with a checkpoint)")
        p.add_argument("--epochs", type=int, default=kd.EPOCHS)
        p.add_argument("--widths", type=widths, default=steps.STUDENT_WIDTHS)
        p.add_argument("--prune", action="store_true", help="also the pruning curve")
        p.add_argument("--prune-folds", help="loso: comma-separated folds that get the pruning curve")
        p.add_argument("--prune-epochs", type=int, default=15)
        p.add_argument("--no-labels-baseline", action="store_true")

    p = sub.add_parser("report", help="pool fold results into benchmarks/results/export_<name>.json + .md")
    p.add_argument("--out", required=True, type=pathlib.Path, help="the output root of `fold`/`loso`")
    p.add_argument("--name", required=True)
    p.add_argument("--cost", type=pathlib.Path, help="JSON with the wall time of the runs (optional)")
    p.add_argument("--compare", action="append", default=[], metavar="RUN:SET",
                   help="also pool a training run's result set over the same folds, e.g. runs/emodb_loso_cnn:single")
    from . import recipe

    from train.options import rt60_list, rt60_range, snr_list
    from train.degraded import RT60S, SNRS

    for command, what in (("noisy", "in recorded noise"), ("reverb", "in simulated reverberant rooms")):
        p = sub.add_parser(command, help=f"score each fold's deployed file {what} (export/degraded.py)")
        p.add_argument("--export-dir", type=pathlib.Path, required=True, help="an export chain's folder (fold folders inside)")
        p.add_argument("--name", required=True, help=f"results file stem, e.g. default_model_{command}")
        p.add_argument("--model", required=True, help="row label, e.g. 'cnn student INT8 ONNX (default recipe)'")
        if command == "noisy":
            p.add_argument("--noise", type=pathlib.Path, default=None, help="noise folder (default: DATA/noise/household)")
            p.add_argument("--snrs", type=snr_list, default=SNRS, help="dB, comma list (default %(default)s)")
        else:
            p.add_argument("--rt60", type=rt60_list, default=RT60S, help="seconds, comma list (default %(default)s)")
        p.add_argument("--seed", type=int, default=0, help="which noise segment or room each clip gets")
        p.add_argument("--key", default="deployed_onnx_int8", help="result.json's key (or a file name) of the file to score")
        p.add_argument("--data", default=None, help="data root (default: the run's, EDGE_SER_DATA or ../shared/data)")
        p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results"))
    p = sub.add_parser("encoder", help="a fusion run's GAP model -> FP32 / INT8 ONNX per fold and on every clip, "
                       "scored: a packaged-model candidate (export/encoder_models.py)")
    p.add_argument("--cv", required=True, type=pathlib.Path, help="the cross-validation fusion run (its checkpoints)")
    p.add_argument("--all", required=True, type=pathlib.Path, help="the same model's run on every clip (--protocol all)")
    p.add_argument("--name", required=True, help="candidate name, e.g. tiny.en-3")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/encoder_export"))
    p = sub.add_parser("package", help="choose and ship the packaged models (default, tiny) by the rule of "
                       "docs/packaged-models.md; accuracy-latency table and plot in benchmarks/results")
    p.add_argument("--candidates", type=pathlib.Path, default=pathlib.Path("runs/encoder_export"),
                   help="folder of the encoder candidates (python -m export encoder --out)")
    p.add_argument("--cnn", type=pathlib.Path, default=None,
                   help="the CNN student's INT8 ONNX with its card (python -m export default), also a candidate")
    p.add_argument("--ship-to", type=pathlib.Path, default=None, help="default: edge_ser/models")
    p.add_argument("--results-to", type=pathlib.Path, default=None, help="default: benchmarks/results")
    p = sub.add_parser("calibrate", help="the packaged models' reliability, ECE and softmax temperature from their "
                       "held-out logits (also the last step of package); the temperature goes into the files")
    p.add_argument("--candidates", type=pathlib.Path, default=pathlib.Path("runs/encoder_export"),
                   help="folder of the encoder candidates (python -m export encoder --out)")
    p.add_argument("--ship-to", type=pathlib.Path, default=None, help="default: edge_ser/models")
    p.add_argument("--results-to", type=pathlib.Path, default=None,
                   help="default: benchmarks/results (reads packaged_models.json there for the choice)")
    p = sub.add_parser("default", help="the default model's recipe: EmoDB+RAVDESS, cross-validated, shipped")
    p.add_argument("--data", help="data root (default: EDGE_SER_DATA or ../shared/data)")
    p.add_argument("--out", type=pathlib.Path, default=None,
                   help="work folder (resumes; default runs/default, runs/default_CANDIDATE with --candidate)")
    p.add_argument("--ship-to", type=pathlib.Path, default=None,
                   help="where default.onnx/.tflite and the card go (default: OUT/ship; the packaged models are "
                        "chosen by `python -m export package`)")
    p.add_argument("--teacher-epochs", type=int, default=recipe.TEACHER_EPOCHS)
    p.add_argument("--student-epochs", type=int, default=recipe.STUDENT_EPOCHS)
    p.add_argument("--widths", type=widths, default=recipe.WIDTHS, help="student widths (default %(default)s)")
    p.add_argument("--candidate", default=None, help="build and score the recipe without shipping it: figures as "
                   "benchmarks/results/default_model_CANDIDATE.*, files in --ship-to (e.g. noise_e48)")
    p.add_argument("--noise-train", default=None, help="folder of noise recordings the teacher and students train "
                   f"with (default: DATA/{recipe.NOISE_FOLDER}, as the shipped model)")
    p.add_argument("--clean", action="store_true", help="train on clean clips only (no --noise-train)")
    p.add_argument("--reverb-train", type=rt60_range, default=None,
                   help="low,high RT60 (s) of simulated rooms the teacher and students train in (e.g. 0.2,1.0)")
    return parser


def settings_of(args, prune: bool):
    from .pipeline import Settings

    return Settings(epochs=args.epochs, widths=args.widths, prune=prune, prune_epochs=args.prune_epochs,
                    labels_baseline=not args.no_labels_baseline)


def trained_folds(run: pathlib.Path, variant: str) -> list[str]:
    from .folds import run_config

    folds = [f for f in run_config(run)["folds"] if (run / "checkpoints" / f / f"{variant}.pt").exists()]
    if not folds:
        raise ValueError(f"{run}: no fold has a {variant}.pt checkpoint (--variant)")
    return folds


def default_variant(run: pathlib.Path) -> str:
    """samsg for a run with masking variants (its last one otherwise), phase1 for a single-phase run."""
    from .folds import run_config

    variants = run_config(run)["run"].get("variants") or []
    return "samsg" if "samsg" in variants else (variants[-1] if variants else "phase1")


def dispatch(args) -> object:
    from . import pipeline, report, steps

    c = args.command
    if getattr(args, "variant", "") is None:
        args.variant = default_variant(args.run)
    if c == "teacher":
        return steps.teacher(args.run, args.fold, args.variant, args.out)
    if c == "distill":
        return steps.distill(args.teacher, args.out, args.widths, args.epochs, args.temperature, args.alpha)
    if c == "prune":
        return steps.prune_model(args.model, args.out, args.teacher, keep=args.keep, sparsity=args.sparsity,
                                 epochs=args.epochs)
    if c == "onnx":
        return steps.to_onnx(args.model, args.out, optimise=not args.no_optimise)
    if c == "quantize":
        return steps.quantize_onnx(args.model, args.out, args.mode, args.method, args.activations,
                                   keep_float=args.keep_float, weight_bits=args.weight_bits)
    if c == "tflite":
        return steps.to_tflite(args.model, args.out, args.int8, args.reference, keep_float=args.keep_float,
                               observer=args.observer)
    if c == "fold":
        return pipeline.run_fold(args.run, args.variant, args.fold, args.out, settings_of(args, args.prune))
    if c == "loso":
        chosen = args.folds.split(",") if args.folds else trained_folds(args.run, args.variant)
        prune_folds = set(args.prune_folds.split(",")) if args.prune_folds else set()
        for fold in chosen:
            print(f"{fold}: running", flush=True)
            pipeline.run_fold(args.run, args.variant, fold, args.out, settings_of(args, args.prune or fold in prune_folds))
        return chosen
    if c == "report":
        return report.write(args.out, args.name, args.cost, args.compare)
    if c in ("noisy", "reverb"):
        from train.data import default_data_root

        from . import degraded

        if c == "noisy":
            noise = args.noise or pathlib.Path(args.data or default_data_root()) / "noise" / "household"
            condition = degraded.noise_condition(noise, args.snrs, args.seed)
        else:
            condition = degraded.room_condition(args.rt60, args.seed)
        return str(degraded.write(args.export_dir, condition, args.name, args.model, args.out, args.key, args.data))
    if c == "encoder":
        from . import encoder_models

        candidate = encoder_models.build_candidate(args.cv, args.all, args.name, args.out)
        lines = [f"{args.out / args.name / 'candidate.json'}: {candidate['parameters']:,} parameters"]
        for name, scores in candidate["cross_validation"].items():
            latency = candidate["files"][name]["latency_3s"]
            lines.append(f"  {name}: cross-validated UA {100 * scores['pooled']['ua']:.1f}%, 3-s clip p95 "
                         f"{latency['p95_ms']:.1f} ms" + (f", parity {'PASS' if scores['parity']['passes'] else 'FAIL'}"
                                                          if "parity" in scores else ""))
        return "\n".join(lines)
    if c == "package":
        from . import packaged

        result = packaged.main(args.candidates, args.cnn, args.ship_to or packaged.PACKAGE_MODELS,
                               args.results_to or packaged.RESULTS)
        return "\n".join(f"{role}: {name or 'none fits its budget'}" for role, name in result["chosen"].items())
    if c == "calibrate":
        from . import packaged

        results_to = args.results_to or packaged.RESULTS
        chosen = json.loads((results_to / "packaged_models.json").read_text())["chosen"]
        done = packaged.calibrate(chosen, args.candidates, args.ship_to or packaged.PACKAGE_MODELS, results_to)
        return ("calibrated: " + ", ".join(done)) if done else "nothing to calibrate"  # each role printed its line
    if c == "default":
        from . import recipe

        out = args.out or (recipe.Recipe.out.with_name(f"default_{args.candidate}") if args.candidate else recipe.Recipe.out)
        # The packaged models are chosen by `python -m export package` now: the CNN recipe ships to
        # its own folder, whose int8.onnx-like files that step can take as a candidate (--cnn).
        ship_to = args.ship_to or out / "ship"
        if args.clean and args.noise_train:
            raise ValueError(f"--clean and --noise-train {args.noise_train}: choose one")
        from train.data import default_data_root

        noise = None if args.clean else (args.noise_train or
                                         str(pathlib.Path(args.data or default_data_root()).resolve() / recipe.NOISE_FOLDER))
        card = recipe.main(recipe.Recipe(data=args.data, out=out, ship_to=ship_to,
                                         teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs,
                                         widths=args.widths, noise_train=noise,
                                         reverb_train=args.reverb_train,
                                         candidate=args.candidate))
        shipped = card["cross_validation"]["models"]["student INT8 ONNX (shipped)"]["pooled"]
        return (f"{ship_to / card['files']['onnx']['name']}: cross-validated UA {100 * shipped['ua']:.1f}% "
                f"WA {100 * shipped['wa']:.1f}% (card {ship_to / 'default.card.json'})")
    raise AssertionError(c)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    try:
        result = dispatch(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.command == "report":
        print(f"{result} and {result.with_suffix('.md')}")
    elif args.command in ("default", "noisy", "reverb", "encoder", "package", "calibrate"):
        print(result)
    elif isinstance(result, pathlib.Path):
        from .model_files import card_path

        card = json.loads(card_path(result).read_text())
        test = card.get("test", {})
        print(f"{result}: UA {100 * test.get('ua', float('nan')):.1f}% WA {100 * test.get('wa', float('nan')):.1f}%"
              f" (card {card_path(result)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
