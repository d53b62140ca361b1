"""Self-supervised pretraining of the DeiT encoder by masked-spectrogram reconstruction (MAE-style,
He et al. 2022): hide a random 75 % of the patches, encode the visible ones with the classifier's
own ViT, and reconstruct the hidden patches (per-patch normalised) with a light decoder.

The encoder's weights are the classifier's (`Classifier.backbone`), so fine-tuning starts from
them directly; the standalone command saves them as a timm state dict for `--init-from`.
"""
from __future__ import annotations

import argparse
import math
import pathlib
import time

import torch
from torch import nn

MASK_RATIO = 0.75
DECODER_DIM = 128
DECODER_DEPTH = 1


class MaskedAutoencoder(nn.Module):
    """A classifier's ViT encoder + a small transformer decoder that predicts hidden patches."""

    def __init__(self, classifier: nn.Module, decoder_dim: int = DECODER_DIM, decoder_depth: int = DECODER_DEPTH):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.standardize, self.vit = classifier.standardize, classifier.backbone
        grid, patch = self.vit.patch_embed.grid_size, self.vit.patch_embed.patch_size
        self.grid, self.patch = tuple(grid), tuple(patch)
        self.embed = nn.Linear(self.vit.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos = nn.Parameter(torch.randn(1, grid[0] * grid[1], decoder_dim) * 0.02)
        self.decoder = nn.Sequential(*[Block(decoder_dim, 4, 4.0, qkv_bias=True) for _ in range(decoder_depth)])
        self.norm = nn.LayerNorm(decoder_dim)
        self.predict = nn.Linear(decoder_dim, patch[0] * patch[1])

    def patches(self, image: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] -> [B, gh*gw, ph*pw] (frames past the last whole patch dropped)."""
        (gh, gw), (ph, pw) = self.grid, self.patch
        x = image[:, 0, : gh * ph, : gw * pw].reshape(len(image), gh, ph, gw, pw)
        return x.permute(0, 1, 3, 2, 4).reshape(len(image), gh * gw, ph * pw)

    def encode_visible(self, image: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Encode only the kept patch tokens (indices [B, n_keep]); returns [B, n_keep, dim]."""
        vit = self.vit
        tokens = vit.patch_embed(image) + vit.pos_embed[:, vit.num_prefix_tokens :]
        tokens = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(len(image), -1, -1)
        x = vit.norm(vit.blocks(torch.cat([cls, tokens], dim=1)))
        return x[:, 1:]

    def forward(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Log-mel [B, n_mels, frames] -> mean squared error on the hidden patches (scalar)."""
        image = self.standardize(features)
        target = self.patches(image)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        n = target.shape[1]
        n_keep = max(1, int(round(n * (1 - MASK_RATIO))))
        order = torch.rand(len(image), n, generator=generator).argsort(dim=1)
        keep, hidden = order[:, :n_keep], order[:, n_keep:]
        encoded = self.embed(self.encode_visible(image, keep))
        tokens = self.mask_token.expand(len(image), n, -1).clone()
        tokens.scatter_(1, keep[..., None].expand(-1, -1, tokens.shape[-1]), encoded)
        predicted = self.predict(self.norm(self.decoder(tokens + self.decoder_pos)))
        index = hidden[..., None].expand(-1, -1, target.shape[-1])
        return ((torch.gather(predicted, 1, index) - torch.gather(target, 1, index)) ** 2).mean()


def pretrain(classifier: nn.Module, features: torch.Tensor, *, epochs: int, lr: float = 1e-3,
             batch_size: int = 32, seed: int = 0, progress: bool = True, desc: str = "pretrain") -> list[float]:
    """Pretrain `classifier.backbone` in place on unlabelled log-mel [N, n_mels, frames] (its
    standardiser must already be fitted). Returns per-epoch mean loss."""
    from .loop import cosine_lr, run_epochs, time_shift

    generator = torch.Generator().manual_seed(seed)
    mae = MaskedAutoencoder(classifier)
    optimizer = torch.optim.AdamW([p for n, p in mae.named_parameters()], lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(features) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_lr(s, steps, max(1, steps // 20)))
    return run_epochs(
        mae, lambda index: mae(time_shift(features[index], generator), generator), len(features),
        epochs=epochs, batch_size=batch_size, optimizer=optimizer, schedule=schedule,
        generator=generator, desc=desc, progress=progress)


# What the standalone command shares with a training run's configuration.
SHARED_OPTIONS = ("data", "corpus", "seconds", "n_mels", "normalize", "patch", "depth", "dim", "heads", "seed",
                  "threads", "cache")


def add_pretrain_options(p: argparse.ArgumentParser) -> None:
    from .options import add_config_options
    from .run_config import RunConfig

    add_config_options(p, RunConfig, only=SHARED_OPTIONS)
    p.add_argument("--exclude-speakers", default="", help="comma list: speakers kept out (a test fold's)")
    p.add_argument("--extra-dir", type=pathlib.Path, default=None, help="folder of more unlabelled audio")
    p.add_argument("--epochs", type=int, default=50, help="pretraining epochs (default: 50)")
    p.add_argument("--lr", type=float, default=1e-3, help="pretraining learning rate (default: 0.001)")
    p.add_argument("--out", type=pathlib.Path, required=True, help="checkpoint to write (.pt)")


def pretrain_main(args: argparse.Namespace) -> None:
    """Standalone: pretrain on the corpus minus excluded speakers (+ a folder), save a timm state dict."""
    from . import models
    from .data import Clip, load_corpus
    from .features import corpus_features
    from .options import config_values
    from .run_config import RunConfig
    from .run_dir import feature_cache

    cfg = RunConfig(**config_values(args, RunConfig))
    torch.set_num_threads(cfg.threads)
    corpus = load_corpus(cfg.corpus, cfg.data)
    excluded = {s for s in args.exclude_speakers.split(",") if s}
    corpus = corpus.subset([c.speaker not in excluded for c in corpus.clips])
    if args.extra_dir:
        from .data import audio_files

        corpus.clips += [Clip(p, corpus.labels[0], "extra") for p in audio_files(args.extra_dir)]
    x = torch.from_numpy(corpus_features(corpus, cfg.feature_config(), cfg.seconds, feature_cache(cfg), True))
    torch.manual_seed(cfg.seed)
    classifier = models.build("deit", len(corpus.labels), tuple(x.shape[1:]), patch=cfg.patch, depth=cfg.depth,
                              dim=cfg.dim, heads=cfg.heads)
    classifier.standardize.fit(x)
    start = time.time()
    history = pretrain(classifier, x, epochs=args.epochs, lr=args.lr, seed=cfg.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": classifier.backbone.state_dict(), "loss": history, "clips": len(x),
                "seconds": time.time() - start}, args.out)
    print(f"{args.out}: {len(x)} clips, {args.epochs} epochs, final loss {history[-1]:.4f}")
