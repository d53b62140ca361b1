"""PyTorch model files of the export pipeline and their model cards.

A model file (`.pt`) holds what is needed to rebuild the network without its training code:
    {"format": FORMAT, "arch": {...}, "state_dict": {...}, "info": {labels, feature_config,
     window_seconds}, "card": {...}}
`arch` describes the network (`kind` cnn | deit, sizes; pruned DeiT blocks list their heads and
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

FORMAT = "edge-ser-export/1"
CARD_SUFFIX = ".card.json"


def cnn_arch(n_classes: int, n_mels: int, widths=(32, 64, 128, 256)) -> dict:
    return {"kind": "cnn", "n_classes": n_classes, "n_mels": n_mels, "widths": [int(w) for w in widths]}


def deit_arch(n_classes: int, input_shape, patch=(16, 16), depth: int = 4, dim: int = 192, heads: int = 3,
              stem: str = "patch") -> dict:
    return {"kind": "deit", "n_classes": n_classes, "n_mels": int(input_shape[0]), "input_shape": list(input_shape),
            "patch": list(patch), "depth": depth, "dim": dim, "heads": heads, "stem": stem,
            "block_heads": [heads] * depth, "block_mlp": [4 * dim] * depth}


def build(arch: dict) -> models.Classifier:
    """A freshly initialised classifier with the shapes `arch` describes."""
    if arch["kind"] == "cnn":
        return models.Classifier(arch["n_mels"], models.SmallCNN(arch["n_classes"], tuple(arch["widths"])))
    if arch["kind"] == "deit":
        model = models.build("deit", arch["n_classes"], tuple(arch["input_shape"]), patch=tuple(arch["patch"]),
                             depth=arch["depth"], dim=arch["dim"], heads=arch["heads"], drop_path=0.0,
                             stem=arch.get("stem", "patch"))
        for block, n_heads, hidden in zip(model.backbone.blocks, arch["block_heads"], arch["block_mlp"]):
            resize_block(block, n_heads, hidden)
        return model
    raise ValueError(f"unknown architecture kind {arch['kind']!r}: use cnn or deit")


def resize_block(block: nn.Module, n_heads: int, mlp_hidden: int) -> None:
    """Give a timm ViT block `n_heads` attention heads (same head size) and `mlp_hidden` MLP
    channels, with fresh weights of the new shapes (pruning copies the kept weights in)."""
    attn, mlp = block.attn, block.mlp
    dim, head_dim = attn.qkv.in_features, attn.head_dim
    if n_heads != attn.num_heads:
        attn.num_heads, attn.attn_dim = n_heads, n_heads * head_dim
        attn.qkv = nn.Linear(dim, 3 * attn.attn_dim, bias=attn.qkv.bias is not None)
        attn.proj = nn.Linear(attn.attn_dim, attn.proj.out_features, bias=attn.proj.bias is not None)
    if mlp_hidden != mlp.fc1.out_features:
        mlp.fc1 = nn.Linear(dim, mlp_hidden, bias=mlp.fc1.bias is not None)
        mlp.fc2 = nn.Linear(mlp_hidden, mlp.fc2.out_features, bias=mlp.fc2.bias is not None)


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


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def n_nonzero(model: nn.Module) -> int:
    return int(sum(int((p != 0).sum()) for p in model.parameters()))
