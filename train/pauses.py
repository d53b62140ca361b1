"""Where SAMSG's masks fall: on speech, or on the pauses around it.

SAMSG masks the patches attention rollout ranks highest, so that the model has to find emotion
cues elsewhere. A transformer can park attention on low-information tokens (Darcet et al. 2024,
"Vision Transformers Need Registers"); if the top-ranked patches are mostly pauses, the masked
copies hide little speech and SAMSG becomes random masking with extra steps. This measures it on
the masks a run actually trained on: each fold's phase-1 model over that fold's training clips,
with the runtime's VAD (`edge_ser.vad`, over each whole file) marking speech frames. A token
column whose frames are less than half speech counts as a pause. (A conv-stem token sees some
40 frames around its 16, so a "pause" token is a masked input block that is pause, not a token
whose view holds no speech.)
"""
from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import torch

from . import masking, protocols, rollout
from .data import load_corpus
from .features import corpus_speech
from .records import environment, write_json, write_text
from .run_dir import clip_features, load_fold_model, quick_corpus, read_run_config, stored_config

# The masks recomputed here must cover the rollout mass the fold recorded in training (4 decimals
# of agreement: one clip more or less among ~1000 moves the mean by about that much).
SAME_MASKS = 1e-4


def pause_shares(importance: torch.Tensor, pauses: torch.Tensor, ratio: float) -> dict:
    """Rollout importance [B, gh, gw] and pause tokens [B, gh, gw] -> the share of all tokens that
    are pauses (`area`), of the top-`ratio` tokens SAMSG masks (`top_k`), and of each clip's
    rollout mass, averaged over clips (`mass`); and the mean share of each clip's rollout mass
    under its mask (`rollout_share_masked`, as training records it)."""
    top = masking.top_k_mask(importance, ratio)
    return {"area": float(pauses.float().mean()), "top_k": masking.pause_share(top, pauses),
            "mass": masking.rollout_share(importance, pauses), "rollout_share_masked": masking.rollout_share(importance, top)}


def run_pause_shares(run_dir: pathlib.Path, data: str | None = None) -> list[dict]:
    """One dict per fold of a SAMSG run that has finished its samsg variant: `pause_shares` over
    the fold's training clips, refused unless its masks are the ones the fold trained on."""
    run_dir = pathlib.Path(run_dir)
    config = read_run_config(run_dir)
    cfg = dataclasses.replace(stored_config(config, data), progress=False)
    if cfg.model != "deit" or "samsg" not in cfg.variants:
        raise ValueError(f"{run_dir}: not a SAMSG run (python -m train samsg)")
    if cfg.extra_train or cfg.phase1_from:
        raise ValueError(f"{run_dir}: runs with added corpora or another run's phase 1 are not supported")
    corpus = load_corpus(cfg.corpus, cfg.data)
    corpus = quick_corpus(corpus) if cfg.quick else corpus
    folds = {f.name: f for f in protocols.make_folds(cfg.protocol, corpus.targets(), corpus.speakers(), cfg.seed)}
    x, speech = clip_features(cfg, corpus, cfg.seconds), corpus_speech(corpus, cfg.seconds)
    shares = []
    for name in config["folds"]:
        path = run_dir / "samsg" / f"fold_{name}.json"
        if not path.is_file():
            continue
        source, fold = json.loads(path.read_text()), folds[name]
        if [corpus.clips[i].path.name for i in fold.test] != source["test_clips"] or len(fold.train) != source["n_train"]:
            raise ValueError(f"{path}: the fold's clips here are not the ones it was trained and tested on (other --data?)")
        if "rollout_share_masked" not in source:
            raise ValueError(f"{path}: records no rollout_share_masked (a run from before it was recorded), "
                             "so these masks cannot be checked against the trained ones")
        model, _ = load_fold_model(run_dir, name, "phase1")
        importance = rollout.patch_importance(model, x[fold.train], cfg.head_fusion)
        pauses = masking.pause_tokens(speech[fold.train], tuple(importance.shape[1:]), cfg.patch[1])
        share = pause_shares(importance, pauses, cfg.mask_ratio)
        if not abs(share["rollout_share_masked"] - source["rollout_share_masked"]) <= SAME_MASKS:
            raise ValueError(f"{path}: these masks cover {share['rollout_share_masked']:.4f} of the rollout mass, the "
                             f"fold's recorded {source['rollout_share_masked']:.4f} (other clips or checkpoint?)")
        shares.append({"fold": name, "n_clips": len(fold.train), **share})
    if not shares:
        raise FileNotFoundError(f"{run_dir}: no fold has finished its samsg variant yet")
    return shares


def write_pauses(name: str, run_dirs: list[pathlib.Path], out_dir: pathlib.Path, data: str | None = None) -> pathlib.Path:
    """`<out_dir>/NAME.{json,md}`: every run's per-fold shares and their means."""
    runs = {str(run): run_pause_shares(run, data) for run in run_dirs}
    settings = {str(run): {k: read_run_config(pathlib.Path(run))["run"][k] for k in ("mask_ratio", "head_fusion", "seed")}
                for run in run_dirs}
    folds = [f for shares in runs.values() for f in shares]
    mean = {k: float(np.mean([f[k] for f in folds])) for k in ("area", "top_k", "mass")}
    lines = [f"# {name}: where SAMSG's masks fall (speech or pauses)", "",
             "Each fold's phase-1 model over that fold's training clips: the masks SAMSG trained on (`train/pauses.py`; "
             "checked to cover the rollout mass each fold recorded). A token column is a pause when fewer than "
             f"{masking.PAUSE_BELOW:.0%} of its frames are speech to the runtime's VAD (over the whole file). "
             "Diagnostic: no accuracy here.", "",
             "| run | fold | training clips | pause share of tokens | of the top-k masked tokens | "
             "of each clip's rollout mass |", "|---|---|---|---|---|---|"]
    lines += [f"| `{run}` | {f['fold']} | {f['n_clips']} | {100 * f['area']:.1f} % | {100 * f['top_k']:.1f} % | "
              f"{100 * f['mass']:.1f} % |" for run, shares in runs.items() for f in shares]
    lines += [f"| mean of {len(folds)} folds | | | {100 * mean['area']:.1f} % | {100 * mean['top_k']:.1f} % | "
              f"{100 * mean['mass']:.1f} % |", ""]
    payload = {"name": name, "diagnostic": True, "pause_below": masking.PAUSE_BELOW, "settings": settings,
               "runs": runs, "mean": mean, "environment": environment()}
    write_json(out_dir / f"{name}.json", payload)
    md = out_dir / f"{name}.md"
    write_text(md, "\n".join(lines))
    return md
