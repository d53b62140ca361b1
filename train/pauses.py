"""Where SAMSG's masks fall: on speech, or on the pauses around it.

SAMSG masks the patches attention rollout ranks highest, so that the model has to find emotion
cues elsewhere. A transformer can park attention on low-information tokens (Darcet et al. 2024,
"Vision Transformers Need Registers"); if the top-ranked patches are mostly pauses, the masked
copies hide little speech and SAMSG becomes random masking with extra steps. This measures it on
the masks a run actually trained on: each fold's phase-1 model over that fold's training clips,
with the runtime's VAD (`edge_ser.vad`) marking speech frames. A token column whose frames are
less than half speech counts as a pause.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import torch

from edge_ser.vad import VAD_CONFIG

from . import masking, rollout
from .data import load_corpus
from .features import clip_speech, corpus_features
from .run import clip_features, feature_cache, load_fold_model, quick_corpus, read_run_config, stored_config

def pause_shares(importance: torch.Tensor, pauses: torch.Tensor, ratio: float) -> dict:
    """Rollout importance [B, gh, gw] and pause tokens [B, gh, gw] -> the share of all tokens that
    are pauses (`area`), of the top-`ratio` tokens SAMSG masks (`top_k`), and of the rollout mass
    (`mass`); and the mean share of each clip's rollout mass under its mask, as training records it."""
    tokens = pauses.numpy()
    top = masking.top_k_mask(importance, ratio).numpy()
    weights = importance.numpy()
    masked_mass = (weights * top).reshape(len(weights), -1).sum(1) / weights.reshape(len(weights), -1).sum(1)
    return {"area": float(tokens.mean()), "top_k": float((top & tokens).sum() / top.sum()),
            "mass": float((weights * tokens).sum() / weights.sum()), "rollout_share_masked": float(masked_mass.mean())}


def run_pause_shares(run_dir: pathlib.Path, data: str | None = None) -> list[dict]:
    """One dict per finished fold of a SAMSG run: its `pause_shares` over its training clips."""
    run_dir = pathlib.Path(run_dir)
    config = read_run_config(run_dir)
    cfg = stored_config(config, data)
    if cfg.model != "deit" or "samsg" not in cfg.variants:
        raise ValueError(f"{run_dir}: not a SAMSG run (python -m train samsg)")
    if cfg.speaker_norm or cfg.extra_train or cfg.crop_seconds or cfg.phase1_from:
        raise ValueError(f"{run_dir}: runs with speaker normalisation, added corpora, crops or another run's "
                         "phase 1 are not supported (their training inputs are not the corpus clips as they are)")
    corpus = load_corpus(cfg.corpus, cfg.data)
    corpus = quick_corpus(corpus) if cfg.quick else corpus
    x = clip_features(cfg, corpus, cfg.seconds)
    vad_x = corpus_features(corpus, VAD_CONFIG, cfg.seconds, feature_cache(cfg))
    row_of = {clip.path.name: i for i, clip in enumerate(corpus.clips)}
    shares = []
    for fold in config["folds"]:
        path = run_dir / "samsg" / f"fold_{fold}.json"
        if not path.is_file():
            continue
        source = json.loads(path.read_text())
        tested = {row_of[name] for name in source["test_clips"]}
        rows = [i for i in range(len(corpus.clips)) if i not in tested]
        model, _ = load_fold_model(run_dir, fold, "phase1")
        importance = rollout.patch_importance(model, x[rows], cfg.head_fusion)
        pauses = masking.pause_tokens(clip_speech(vad_x[rows]), tuple(importance.shape[1:]), cfg.patch[1])
        share = pause_shares(importance, pauses, cfg.mask_ratio)
        # The masks must be the ones the fold trained on: the same rollout mass under them.
        if abs(share["rollout_share_masked"] - source.get("rollout_share_masked", share["rollout_share_masked"])) > 1e-4:
            raise ValueError(f"{path}: these masks cover {share['rollout_share_masked']:.4f} of the rollout mass, the "
                             f"fold's recorded {source['rollout_share_masked']:.4f} (other clips or checkpoint?)")
        shares.append({"fold": fold, "n_clips": len(rows), **share})
    if not shares:
        raise FileNotFoundError(f"{run_dir}: no fold has finished its samsg variant yet")
    return shares


def write_pauses(name: str, run_dirs: list[pathlib.Path], out_dir: pathlib.Path, data: str | None = None) -> pathlib.Path:
    """`<out_dir>/NAME.{json,md}`: every run's per-fold shares and their means."""
    runs = {str(run): run_pause_shares(run, data) for run in run_dirs}
    folds = [f for shares in runs.values() for f in shares]
    mean = {k: float(np.mean([f[k] for f in folds])) for k in ("area", "top_k", "mass")}
    lines = [f"# {name}: where SAMSG's masks fall (speech or pauses)", "",
             "Each fold's phase-1 model over that fold's training clips, the clips SAMSG masked (`train/pauses.py`). "
             f"A token column is a pause when fewer than {masking.PAUSE_BELOW:.0%} of its frames are speech to the runtime's VAD. "
             "Diagnostic: no accuracy here.", "",
             "| run | fold | training clips | pause share of tokens | of the top-k masked tokens | of the rollout mass |",
             "|---|---|---|---|---|---|"]
    lines += [f"| `{run}` | {f['fold']} | {f['n_clips']} | {100 * f['area']:.1f} % | {100 * f['top_k']:.1f} % | "
              f"{100 * f['mass']:.1f} % |" for run, shares in runs.items() for f in shares]
    lines += [f"| mean of {len(folds)} folds | | | {100 * mean['area']:.1f} % | {100 * mean['top_k']:.1f} % | "
              f"{100 * mean['mass']:.1f} % |", ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps({"name": name, "diagnostic": True, "runs": runs, "mean": mean},
                                                     indent=1))
    md = out_dir / f"{name}.md"
    md.write_text("\n".join(lines))
    return md
