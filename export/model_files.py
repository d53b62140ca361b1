"""PyTorch model files of the export pipeline and their model cards.

A model file (`.pt`) holds what is needed to rebuild the network without its training code:
    {"format": FORMAT, "arch": {...}, "state_dict": {...}, "info": {labels, feature_config,
     window_seconds}, "card": {...}}
`arch` describes the network (`train.arch`: kind, sizes; pruned DeiT blocks list their heads and
MLP widths), so a pruned model reloads with its smaller shapes. Every model file `X.ext` gets a
model card `X.card.json` beside it (parameters, size, protocol, scores, latency, ...).
"""
from __future__ import annotations

import datetime
import json
import pathlib

import torch
from torch import nn

from edge_ser.config import FeatureConfig
from edge_ser.contract import ModelInfo
from train import models
from train.arch import build

FORMAT = "edge-ser-export/1"
CARD_SUFFIX = ".card.json"


def model_info(saved: dict, card: dict | None = None) -> ModelInfo:
    """The runtime contract's ModelInfo of a loaded model file (optionally with a card)."""
    info = saved["info"]
    return ModelInfo(tuple(info["labels"]), FeatureConfig(**info["feature_config"]), float(info["window_seconds"]),
                     card=card)


def save(path: pathlib.Path, model: nn.Module, arch: dict, info: dict, card: dict) -> pathlib.Path:
    """Write a model file and its card; returns the model path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "arch": arch, "state_dict": model.state_dict(), "info": info, "card": card}
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    write_card(path, card)
    return path


def load(path: pathlib.Path) -> tuple[models.Classifier, dict]:
    """Model file -> (model in eval mode, the saved dict without weights)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path}: not an export model file (format {FORMAT!r}); "
                         f"use `python -m export teacher` to wrap a training checkpoint")
    model = build(saved["arch"])
    model.load_state_dict(saved.pop("state_dict"))
    return model.eval(), saved


def card_path(model_path: pathlib.Path) -> pathlib.Path:
    model_path = pathlib.Path(model_path)
    return model_path.with_name(model_path.name + CARD_SUFFIX)


def write_card(model_path: pathlib.Path, card: dict) -> pathlib.Path:
    out = card_path(model_path)
    out.write_text(json.dumps(card, indent=1, sort_keys=True))
    return out


def read_card(model_path: pathlib.Path) -> dict:
    path = card_path(model_path)
    return json.loads(path.read_text()) if path.exists() else {}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def n_nonzero(model: nn.Module) -> int:
    return int(sum(int((p != 0).sum()) for p in model.parameters()))
