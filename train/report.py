"""Collect run directories into `benchmarks/results/<name>.json` and `<name>.md`: every result set's
pooled and per-fold scores, the exact protocol and hyper-parameters, and the training cost."""
from __future__ import annotations

import json
import pathlib

import numpy as np

from .copies import COPY_FIELDS
from .metrics import plot_confusion, summarise
from .result_sets import DEGRADATIONS, NOISE, REVERB
from .run_config import RunConfig, run_fields

DATA_NOTES = {
    "emodb": ("EmoDB here is the processed copy in ../shared/data (every utterance cut to its first 2.0 s "
              "or zero-padded, peak-normalised): not one-to-one comparable with published full-utterance figures."),
    "ravdess": "RAVDESS speech, all 1440 clips, 16 kHz mono FLAC; clips centre-cropped/padded to the run's length.",
}
PEERS = {  # measured on this machine by a peer (../shared/notes/toolchain.md), same protocol
    ("emodb", "loso"): "ComParE_2016 + linear SVM UA 75.8 / WA 77.9 % (81.1 / 83.2 speaker-normalised); "
                       "a plain 0.39 M CNN UA 74.8-76.8 %. Aim: UA >= 88 %.",
    ("ravdess", "groups4"): "ComParE_2016 + linear SVM UA 57.6 / WA 57.5 % (67.0 / 67.8 speaker-normalised); "
                            "published EmoBox wav2vec2-base 55.4 %, WavLM-large 72.2 % WA. Aim: WA >= 72 %.",
    ("emodb", "sd10"): "ComParE_2016 + linear SVM UA 81.6 / WA 83.7 %; SAMSG (Kim & Lee 2025) published 96.30 % "
                       "accuracy on full-length EmoDB.",
}
PROTOCOL_NAMES = {
    "loso": "leave-one-speaker-out (speaker-independent)",
    "groups4": "6 folds of 4 actors: 1-4, 5-8, ... (speaker-independent)",
    "sd10": "stratified 10-fold over clips (SPEAKER-DEPENDENT: test speakers also in training)",
}
RESULT_SETS = {
    "single": "trained once",
    "phase1": "phase 1 only (shared start of the variants)",
    "none": "phase 1 + continuation on the originals (no masking)",
    "random": "phase 1 + continuation on originals + random-patch-masked copies",
    "samsg": "phase 1 + continuation on originals + SAMSG (top-k rollout) masked copies",
    "samsg_speech": "phase 1 + continuation on originals + SAMSG masked copies, the top-k taken among speech tokens "
                    "(the runtime's VAD; train/masking.py)",
    "ensemble": "mean class probabilities of the runs in `ensemble_of` (python -m train ensemble)",
    "prior": "the same fold models' probabilities times each fold's training class frequencies, then argmax: "
             "the decision for accuracy (WA) rather than UA (python -m train prior; train/decision.py)",
    "shifts": "the same fold models, each test clip's class probabilities averaged over circular time shifts "
              "(python -m train shifts; train/shifts.py)",
    "shifts_prior": "`shifts` times each fold's training class frequencies, then argmax "
                    "(python -m train prior --result-set shifts)",
}


# What a row label means, for each run setting that adds one (noted when a reported run uses it).
SETTING_NOTES = {
    "speaker_norm": ("`+spknorm` rows are **speaker-normalised** (each speaker's clips z-scored per mel band over "
        "that speaker's own clips, the test speaker's unlabelled clips included): transductive, not "
        "comparable with the inductive rows; compare them with the speaker-normalised peer figures."),
    "speaker_norm_labels": ("`+spknorm-LABEL` rows take each speaker's statistics from its clips of those labels only (the "
        "test speaker's too, chosen by their labels: the stand-in for a user recording calm speech at "
        "set-up). `python -m train enrolment --enrol-labels` scores them with a few such clips instead."),
    "extra_train": ("`+xCORPUS` rows also train on every clip of another corpus (other speakers, relabelled into "
        "this corpus's labels: RAVDESS calm as neutral; RAVDESS surprise and EmoDB boredom dropped); "
        "the test folds are unchanged."),
    "init_from": ("`+init` rows start from another run's checkpoint (the run's `init_from` below; its head is "
        "fresh when the label sets differ)."),
    "speaker_adversary": ("`+spkadv` rows train beside a speaker classifier on the pooled embedding and add a loss that "
        "makes its output uniform (`speaker_adversary` below is that loss's weight; train/adversary.py). "
        "It uses the training speakers' identities only: inductive."),
    "distil_from": ("`+distil` rows learn from a teacher's class probabilities on each fold's training clips "
        "(the run or ensemble `distil_from` below, its checkpoints of that fold) as well as from the "
        "labels (train/teachers.py): one model, the size of its row's model."),
}


def augmentation_label(run: dict) -> str:
    """"+warp+SpecAug+mixup+crop+noise+rooms+ema" for the opt-in augmentations a run used, and a
    moving average of its weights ("" for older runs)."""
    parts = [("warp", run.get("freq_warp")), ("SpecAug", run.get("freq_masks") or run.get("time_masks")),
             ("mixup", run.get("mixup")), ("crop", run.get("crop_seconds")), ("noise", run.get("noise_train")),
             ("rooms", run.get("reverb_train")), ("ema", run.get("ema"))]
    return "".join(f"+{name}" for name, used in parts if used)


def data_label(run: dict) -> str:
    """"+uttnorm+convstem+init+spkadv+distil+xravdess+spknorm-neutral+seed1": per-clip feature normalisation,
    a DeiT's conv stem, a start from a checkpoint, a speaker adversary, distillation from a teacher
    ("+distil8v": on 8 augmented views of each clip),
    added training corpora, speaker normalisation
    (with the labels its statistics come from), a seed other than 0 ("" for none of them)."""
    parts = [("uttnorm", run.get("normalize") == "utterance"), ("convstem", run.get("stem") == "conv"),
             ("init", run.get("init_from")), ("spkadv", run.get("speaker_adversary")),
             ("distil" + (f"{run['distil_views']}v" if run.get("distil_views") else ""), run.get("distil_from")),
             (f"x{pathlib.Path(str(run.get('extra_train'))).stem}", run.get("extra_train")), ("spknorm" + "".join(f"-{label}" for label in run.get("speaker_norm_labels") or []), run.get("speaker_norm")),
             (f"seed{run.get('seed')}", run.get("seed")),
             (f"ens{len(run.get('ensemble_of') or [])}", run.get("ensemble_of"))]
    return "".join(f"+{name}" for name, used in parts if used)


def result_sets(run_dir: pathlib.Path) -> list[str]:
    """The result sets a report looks for in a run directory: the named ones, then any
    `noisy_<snr>db` and `reverb_<rt60>s`, each from the cleanest level down."""
    found = [*RESULT_SETS]
    for kind in DEGRADATIONS:
        mine = [p.name for p in run_dir.glob(f"{kind.prefix}_*") if p.is_dir() and kind.value_of(p.name) is not None]
        found += sorted(mine, key=kind.value_of, reverse=kind.cleaner_above)
    return found


def meaning(result_set: str) -> str:
    if NOISE.value_of(result_set) is not None:
        return (f"the same fold models on their test clips mixed with recorded noise at {NOISE.value_of(result_set):g} "
                "dB SNR (python -m train noisy; train/degraded.py)")
    if REVERB.value_of(result_set) is not None:
        return (f"the same fold models on their test clips in a simulated room of RT60 {REVERB.value_of(result_set):g} s "
                "(python -m train reverb; train/reverb.py)")
    return RESULT_SETS[result_set]


def collect(run_dir: pathlib.Path) -> list[dict]:
    """One row per result set found in a run directory, summarised from its fold JSONs (so a
    run still in progress is reported too, marked incomplete)."""
    config = json.loads((run_dir / "config.json").read_text())
    cost = json.loads((run_dir / "cost.json").read_text()) if (run_dir / "cost.json").exists() else {"sessions": []}
    rows = []
    for name in result_sets(run_dir):
        folds = [json.loads(f.read_text()) for f in sorted((run_dir / name).glob("fold_*.json"))]
        if not folds:
            continue
        summary = summarise(folds, config["labels"])
        summary["train_seconds"] = float(sum(f["train_seconds"] for f in folds))
        summary["complete"] = len(folds) == len(config["folds"])
        per_fold = [{k: f[k] for k in ("fold", "scores", "train_seconds", "rollout_share_masked", "pause_share_masked") if k in f}
                    for f in folds]
        model = config["run"]["model"]
        if config["run"].get("pretrain_epochs"):
            model += f"+MAE({config['run']['pretrain_epochs']} ep)"
        model += augmentation_label(config["run"]) + data_label(config["run"])
        rows.append({"run": str(run_dir), "result_set": name, "meaning": meaning(name),
                     "model": model, "n_parameters": config["n_parameters"],
                     "summary": summary, "folds": per_fold, "config": config, "wall_sessions": cost["sessions"]})
    return rows


def paired(rows: list[dict]) -> tuple[list[str], list[tuple[str, float]]]:
    """Folds every DeiT result set has, and each set's mean fold UA over exactly those folds."""
    deit = [r for r in rows if r["model"].startswith("deit")]
    if len(deit) < 2:
        return [], []
    common = set.intersection(*({f["fold"] for f in r["folds"]} for r in deit))
    means = [(r["result_set"], sum(f["scores"]["ua"] for f in r["folds"] if f["fold"] in common) / max(1, len(common)))
             for r in deit]
    return sorted(common), means


def variant_differences(rows: list[dict]) -> list[str]:
    """Per run with masking variants: each variant's fold UA minus `none`'s on the same folds
    (same phase-1 weights and seed, so the pairing removes the fold-to-fold spread)."""
    lines = []
    for run in dict.fromkeys(r["run"] for r in rows):
        sets = {r["result_set"]: {f["fold"]: f["scores"]["ua"] for f in r["folds"]} for r in rows if r["run"] == run}
        if "none" not in sets:
            continue
        for name in MASKED:
            common = sorted(set(sets.get(name, {})) & set(sets["none"]))
            if not common:
                continue
            d = np.array([sets[name][f] - sets["none"][f] for f in common])
            lines.append(f"- `{run}`: {name} − none = {100 * d.mean():+.1f} ± {100 * d.std():.1f} points of fold UA "
                         f"(better on {(d > 0).sum()} of {len(d)} folds)")
    return lines


# Settings that make no difference to a recipe: runs that differ only in these (and the seed) are
# seeds of one recipe. The variants too: a run may continue another's phase 1 with variants of its own.
NOT_RECIPE = ("seed", "threads", "max_folds", "only_folds", "cache", "progress", "data", "phase1_from", "variants")
MASKED = ("random", "samsg", "samsg_speech")  # variants whose continuation adds masked copies
VARIANT_PAIRS = (("samsg", "none"), ("random", "none"), ("samsg", "random"), ("none", "phase1"),
                 ("samsg_speech", "none"), ("samsg_speech", "random"), ("samsg_speech", "samsg"))


def pooled_variant_differences(rows: list[dict]) -> list[str]:
    """Per recipe run with several seeds (runs whose settings differ only in NOT_RECIPE): each
    pair of masking variants paired by seed and fold (within a recipe the seed fixes phase 1, so
    a run continuing another's phase 1 pairs with it), the mean pooled UA per result set over the
    runs that have it, and the share of each clip's phase-1 rollout mass the masks covered. One
    seed's folds are too noisy to read alone."""
    defaults = run_fields(RunConfig())  # runs from before a field existed had its default
    recipes: dict[str, list[dict]] = {}
    for r in rows:
        if r["result_set"] in ("phase1", "none", *MASKED):
            run = {**defaults, **r["config"]["run"]}
            key = json.dumps({k: v for k, v in run.items() if k not in NOT_RECIPE}, sort_keys=True)
            recipes.setdefault(key, []).append(r)
    lines = []
    for mine in recipes.values():
        sets: dict[str, dict] = {}
        for r in mine:
            sets.setdefault(r["result_set"], {}).update({(r["config"]["run"]["seed"], f["fold"]): f for f in r["folds"]})
        seeds = {seed for folds in sets.values() for seed, _ in folds}
        if len(seeds) < 2 or "none" not in sets:
            continue
        lines.append(f"- runs {', '.join(f'`{run}`' for run in dict.fromkeys(r['run'] for r in mine))} "
                     f"(seeds {', '.join(map(str, sorted(seeds)))}):")
        for a, b in VARIANT_PAIRS:
            common = sorted(set(sets.get(a, {})) & set(sets.get(b, {})))
            if common:
                d = np.array([sets[a][k]["scores"]["ua"] - sets[b][k]["scores"]["ua"] for k in common])
                lines.append(f"  - {a} − {b}: {100 * d.mean():+.1f} ± {100 * d.std():.1f} points of fold UA "
                             f"(better on {(d > 0).sum()} of {len(d)} folds)")
        pooled = {name: [r for r in mine if r["result_set"] == name] for name in sets}
        lines.append("  - pooled UA, mean over runs: " + ", ".join(
            f"{name} {100 * np.mean([r['summary']['pooled']['ua'] for r in these]):.1f} % ({len(these)} runs"
            f"{'' if all(r['summary'].get('complete', True) for r in these) else ', INCOMPLETE'})"
            for name, these in pooled.items()))
        for name in MASKED:
            shares = [f["rollout_share_masked"] for f in sets.get(name, {}).values() if "rollout_share_masked" in f]
            if shares:
                lines.append(f"  - {name} masks covered {100 * np.mean(shares):.1f} % of each clip's phase-1 rollout "
                             f"mass ({100 * min(shares):.1f}-{100 * max(shares):.1f} % per fold, {len(shares)} folds; "
                             f"mask area {100 * mine[0]['config']['run']['mask_ratio']:.0f} %)")
        pauses = [f["pause_share_masked"] for f in sets.get("samsg_speech", {}).values() if "pause_share_masked" in f]
        if pauses:
            lines.append(f"  - samsg_speech masks still on pauses (clips with fewer speech tokens than the mask): "
                         f"{100 * np.mean(pauses):.1f} % of the masked tokens")
    return lines


def _pair_side(rows: list[dict], spec: str) -> dict:
    """The row named by "RUN" (its first result set: single or ensemble) or "RUN:RESULT_SET"."""
    run, _, result_set = spec.partition(":")
    mine = [r for r in rows if pathlib.Path(r["run"]) == pathlib.Path(run) and result_set in ("", r["result_set"])]
    if not mine:
        raise ValueError(f"--pair {spec}: no such run{' result set' if result_set else ''} among the runs reported")
    return mine[0]


def pair_differences(rows: list[dict], pairs: list[str]) -> list[str]:
    """Per "A=B" pair: A's fold UA and WA minus B's on the folds both have (e.g. one seed with and
    without an option: the pairing removes the fold-to-fold spread)."""
    lines = []
    for spec in pairs:
        if "=" not in spec:
            raise ValueError(f"--pair {spec}: give RUN=BASELINE_RUN (each optionally :RESULT_SET)")
        a, b = (_pair_side(rows, side) for side in spec.split("=", 1))
        fa, fb = ({f["fold"]: f["scores"] for f in r["folds"]} for r in (a, b))
        common = sorted(set(fa) & set(fb))
        if not common:
            raise ValueError(f"--pair {spec}: no fold in common")
        ua, wa = (np.array([fa[f][m] - fb[f][m] for f in common]) for m in ("ua", "wa"))
        lines.append(f"- `{a['run']}` {a['result_set']} − `{b['run']}` {b['result_set']}: {100 * ua.mean():+.1f} ± "
                     f"{100 * ua.std():.1f} points of fold UA (better on {(ua > 0).sum()} of {len(ua)} folds), "
                     f"{100 * wa.mean():+.1f} of fold WA")
    return lines


def cumulative_seconds(rows: list[dict], row: dict) -> float:
    """Training seconds of this result set's folds, plus those folds' phase 1 it started from."""
    seconds = row["summary"]["train_seconds"]
    if row["result_set"] in ("none", *MASKED):
        source = row["config"]["run"].get("phase1_from") or row["run"]
        phase1 = [r for r in rows if r["run"] == source and r["result_set"] == "phase1"]
        mine = {f["fold"] for f in row["folds"]}
        seconds += sum(f["train_seconds"] for r in phase1 for f in r["folds"] if f["fold"] in mine)
    return seconds


def markdown(name: str, rows: list[dict], pairs: list[str] = ()) -> str:
    first = rows[0]["config"]
    corpus, protocol = first["run"]["corpus"], first["run"]["protocol"]
    lines = [f"# {name}: {corpus}, {PROTOCOL_NAMES.get(protocol, protocol)}", "",
             f"Data: {DATA_NOTES.get(corpus, corpus)}", "",
             f"Features: edge_ser.features.log_mel, {first['feature_config']['n_mels']} mel bands, 25 ms / 10 ms, "
             f"clips of {first['run']['seconds']} s -> input {first['input_shape']}; per-band standardisation "
             "fitted on the training fold only. No hyper-parameter search: settings fixed before the runs, "
             "last-epoch model, the test fold never used for any choice.", "",
             "| model | result set | params | UA % (pooled) | WA % | macro-F1 % | fold UA % mean ± std | folds | "
             "training time of these folds (1 thread) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        s = row["summary"]
        done = f"{s['n_folds']}" + ("" if s["complete"] else f" of {len(row['config']['folds'])} (INCOMPLETE)")
        lines.append(f"| {row['model']} | {row['result_set']} | {row['n_parameters'] / 1e6:.2f} M | "
                     f"{100 * s['pooled']['ua']:.1f} | {100 * s['pooled']['wa']:.1f} | {100 * s['pooled']['macro_f1']:.1f} | "
                     f"{100 * s['fold_mean']['ua']:.1f} ± {100 * s['fold_std']['ua']:.1f} | {done} | "
                     f"{cumulative_seconds(rows, row) / 60:.1f} min |")
    if (corpus, protocol) in PEERS:
        lines += ["", f"Reference points: {PEERS[corpus, protocol]}"]
    common, means = paired(rows)
    if common and any(not r["summary"]["complete"] for r in rows if r["model"].startswith("deit")):
        lines += ["", f"Paired comparison on the {len(common)} folds every DeiT result set has "
                  f"({', '.join(common)}): mean fold UA " + ", ".join(f"{n} {100 * m:.1f} %" for n, m in means) + "."]
    differences = variant_differences(rows)
    if differences:
        lines += ["", "Masking variants against no masking, paired by fold (mean ± std over folds):", *differences]
    pooled = pooled_variant_differences(rows)
    if pooled:
        lines += ["", "Seeds of one recipe together, masking variants paired by seed and fold (mean ± std over folds):",
                  *pooled]
    if pairs:
        lines += ["", "Paired by fold (mean ± std over folds):", *pair_differences(rows, pairs)]
    pngs = [r["confusion_png"] for r in rows if "confusion_png" in r]
    if pngs:
        lines += ["", "Pooled confusion matrices: " + ", ".join(f"[{p}]({p})" for p in pngs)]
    lines += [line for key, note in SETTING_NOTES.items() if any(r["config"]["run"].get(key) for r in rows)
              for line in ("", note)]
    lines += ["", "Result sets:"] + [f"- `{k}`: {meaning(k)}" for k in dict.fromkeys(r["result_set"] for r in rows)]
    lines += ["", "Runs (exact settings in the JSON beside this file):"]
    for run in dict.fromkeys(r["run"] for r in rows):
        row = next(r for r in rows if r["run"] == run)
        cfg = row["config"]["run"]
        keys = ("model", "epochs", "lr", "weight_decay", "batch_size", "warmup_epochs", "variants", "continue_epochs",
                "continue_lr", "mask_ratio", "mask_fill", "head_fusion", "patch", "depth", "dim", "heads", "drop_path",
                "stem", "pretrain_epochs", "phase1_from", "seed", "threads")
        augmentation = ("freq_warp", "freq_masks", "freq_mask_width", "time_masks", "time_mask_width", "mixup",
                        "crop_seconds") + (COPY_FIELDS if cfg.get("noise_train") or cfg.get("reverb_train") else ())
        if cfg["model"] == "cnn":
            keys = keys[:6] + ("seed", "threads")
        if augmentation_label(cfg):
            keys += augmentation
        keys += tuple(k for k in ("ema", "init_from", "speaker_adversary", "distil_from", "distil_views", "extra_train",
                                  "speaker_norm", "speaker_norm_labels",
                                  "ensemble_of")
                      if cfg.get(k))
        keys += ("normalize",) if cfg.get("normalize", "none") != "none" else ()
        settings = ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg and cfg[k] not in (None, []))
        env = row["config"]["environment"]
        walls = sum(s["wall_seconds"] for s in row["wall_sessions"])  # concurrent --folds sessions add up
        lines.append(f"- `{run}` ({env['date']}, torch {env['torch']}, commit {env['commit'][:10]}): {settings}; "
                     f"wall time {walls / 60:.1f} min (sum over sessions) on a shared 2-core machine with other jobs running.")
    lines.append("")
    return "\n".join(lines)


def write_report(name: str, run_dirs: list[pathlib.Path], out_dir: pathlib.Path, pairs: list[str] = (),
                 only: tuple[str, ...] = (), confusion_pngs: bool = True) -> pathlib.Path:
    """Write `<out_dir>/<name>.{json,md}` and (unless `confusion_pngs` is off) confusion PNGs for
    every result set of the runs (or only those named in `only`)."""
    rows = [row for run_dir in run_dirs for row in collect(pathlib.Path(run_dir))
            if not only or row["result_set"] in only]
    if not rows:
        raise FileNotFoundError(f"no summaries{' of ' + ', '.join(only) if only else ''} in "
                                f"{', '.join(map(str, run_dirs))}")
    pair_differences(rows, pairs)  # a bad --pair fails before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    for row in rows:
        row["train_seconds_per_protocol"] = cumulative_seconds(rows, row)
    for row in rows if confusion_pngs else ():
        s = row["summary"]
        model = row["model"].split("+")[0] + ("_mae" if "+MAE" in row["model"] else "") + \
            (augmentation_label(row["config"]["run"]) + data_label(row["config"]["run"])).replace("+", "_").lower()
        row["confusion_png"] = f"{name}_{model}_{row['result_set']}_confusion.png"
        plot_confusion(s["pooled_confusion"], s["labels"], out_dir / row["confusion_png"],
                       f"{name} {row['model']} {row['result_set']}: pooled UA {100 * s['pooled']['ua']:.1f}% "
                       f"({s['n_folds']} folds)")
    (out_dir / f"{name}.json").write_text(json.dumps({"name": name, "results": rows}, indent=1))
    md = out_dir / f"{name}.md"
    md.write_text(markdown(name, rows, pairs))
    return md
