"""A network's description, `arch` (its kind and sizes, JSON-serialisable), and the network
built from it: what a training run's config.json, a fold's checkpoint and an export model file
need to rebuild a model without the code that trained it.

    {"kind": "cnn", "n_classes", "n_mels", "widths"}
    {"kind": "deit", "n_classes", "n_mels", "input_shape", "patch", "depth", "dim", "heads", "stem",
     "block_heads", "block_mlp"}   # per-block sizes: a pruned DeiT keeps its smaller shapes
"""
from __future__ import annotations

from torch import nn

from . import models

CNN_WIDTHS = (32, 64, 128, 256)


def cnn_arch(n_classes: int, n_mels: int, widths=CNN_WIDTHS) -> dict:
    return {"kind": "cnn", "n_classes": n_classes, "n_mels": n_mels, "widths": [int(w) for w in widths]}


def deit_arch(n_classes: int, input_shape, patch=(16, 16), depth: int = 4, dim: int = 192, heads: int = 3,
              stem: str = "patch") -> dict:
    return {"kind": "deit", "n_classes": n_classes, "n_mels": int(input_shape[0]), "input_shape": list(input_shape),
            "patch": list(patch), "depth": depth, "dim": dim, "heads": heads, "stem": stem,
            "block_heads": [heads] * depth, "block_mlp": [4 * dim] * depth}


def arch_of(config: dict) -> dict:
    """The arch of the network a training run trains, from its config.json (`n_mels` from the
    stored feature configuration, the frames from the stored input shape)."""
    run, n_classes = config["run"], len(config["labels"])
    if run["model"] == "cnn":
        return cnn_arch(n_classes, config["feature_config"]["n_mels"])
    return deit_arch(n_classes, config["input_shape"], run["patch"], run["depth"], run["dim"], run["heads"],
                     run.get("stem", "patch"))


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
