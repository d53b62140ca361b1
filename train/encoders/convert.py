"""Each checkpoint format's encoder tensors -> `WhisperEncoder`'s config and state dict (float32).

Our names are OpenAI's without the `encoder.` prefix (see `whisper.py`), so the OpenAI mapping is a
prefix strip; transformers and CTranslate2 rename modules, and CTranslate2 also fuses the query,
key and value projections into one matrix. Problems raise `EncoderFileError` naming `path`.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, Mapping

import numpy as np
import torch

from .errors import EncoderFileError
from .whisper import FFN_RATIO, WhisperEncoder, WhisperEncoderConfig

State = dict[str, torch.Tensor]

CT2_PREFIX = "encoder/"
CT2_HEADS = "num_heads"
CT2_FUSED_QKV = "self_attention/linear_0"
_CT2_TOP = {
    "conv1/weight": "conv1.weight", "conv1/bias": "conv1.bias",
    "conv2/weight": "conv2.weight", "conv2/bias": "conv2.bias",
    "position_encodings/encodings": "positional_embedding",
    "layer_norm/gamma": "ln_post.weight", "layer_norm/beta": "ln_post.bias",
}
_CT2_BLOCK = {  # after "encoder/layer_N/" -> after "blocks.N."
    "self_attention/layer_norm/gamma": "attn_ln.weight", "self_attention/layer_norm/beta": "attn_ln.bias",
    "self_attention/linear_1/weight": "attn.out.weight", "self_attention/linear_1/bias": "attn.out.bias",
    "ffn/layer_norm/gamma": "mlp_ln.weight", "ffn/layer_norm/beta": "mlp_ln.bias",
    "ffn/linear_0/weight": "mlp.0.weight", "ffn/linear_0/bias": "mlp.0.bias",
    "ffn/linear_1/weight": "mlp.2.weight", "ffn/linear_1/bias": "mlp.2.bias",
}
_CT2_LAYER = re.compile(r"layer_(\d+)/(.+)")

HF_PREFIXES = ("model.encoder.", "encoder.")  # WhisperForConditionalGeneration, WhisperModel
_HF_TOP = {"embed_positions.weight": "positional_embedding", "layer_norm.weight": "ln_post.weight",
           "layer_norm.bias": "ln_post.bias"}
_HF_BLOCK_MODULES = {
    "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln", "fc1": "mlp.0", "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}
_HF_CONFIG_KEYS = {"n_mels": "num_mel_bins", "n_ctx": "max_source_positions", "d_model": "d_model",
                   "n_heads": "encoder_attention_heads", "n_layers": "encoder_layers"}

OPENAI_PREFIX = "encoder."
_OPENAI_DIMS = {"n_mels": "n_mels", "n_ctx": "n_audio_ctx", "d_model": "n_audio_state",
                "n_heads": "n_audio_head", "n_layers": "n_audio_layer"}

# A key bias adds q·b to every score of a query, which softmax ignores: Whisper has none, and a
# checkpoint that stores one (CTranslate2's zeros) loses nothing when it is dropped.
_KEY_BIAS = re.compile(r"blocks\.\d+\.attn\.key\.bias")


def build_encoder(config: WhisperEncoderConfig, state: State, path: str | os.PathLike) -> WhisperEncoder:
    """A `WhisperEncoder` holding `state`; names and shapes must match exactly."""
    encoder = WhisperEncoder(config)
    expected = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    state = {k: v for k, v in state.items() if not _KEY_BIAS.fullmatch(k)}
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [f"{k} has shape {list(v.shape)}, expected {list(expected[k])}"
                 for k, v in state.items() if k in expected and tuple(v.shape) != expected[k]]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise EncoderFileError(path, f"does not fit a Whisper encoder {config}: {'; '.join(problems[:3])}{more}")
    encoder.load_state_dict(state)
    return encoder.eval()


def from_ct2(variables: Mapping[str, np.ndarray], path: str | os.PathLike) -> tuple[WhisperEncoderConfig, State]:
    """CTranslate2 `encoder/...` variables (as `ct2.read_model` keeps them) -> (config, state)."""
    tensors = {k[len(CT2_PREFIX):]: v for k, v in variables.items() if k.startswith(CT2_PREFIX)}
    missing = [CT2_PREFIX + k for k in (CT2_HEADS, *_CT2_TOP) if k not in tensors]
    if missing:
        raise EncoderFileError(path, f"lacks Whisper encoder variables: {', '.join(missing)}")
    heads = int(tensors.pop(CT2_HEADS))
    state: State = {}
    for name, array in tensors.items():
        state.update(_ct2_tensor(name, _float32(array, name, path), path))
    conv1 = state["conv1.weight"]  # [d_model, n_mels, 3]
    config = _config(path, n_mels=conv1.shape[1], n_ctx=state["positional_embedding"].shape[0],
                     d_model=conv1.shape[0], n_heads=heads, n_layers=_count_blocks(state))
    return config, state


def _ct2_tensor(name: str, tensor: torch.Tensor, path: str | os.PathLike) -> State:
    """One CTranslate2 encoder variable (name after `encoder/`) -> our entries (1, or 3 when fused)."""
    if name in _CT2_TOP:
        return {_CT2_TOP[name]: tensor}
    match = _CT2_LAYER.fullmatch(name)
    if match and match[2].startswith(CT2_FUSED_QKV + "/"):
        # Query, key and value stacked along the output dimension, in that order.
        kind = match[2].rsplit("/", 1)[1]
        names = ("attn.query", "attn.key", "attn.value")
        return {f"blocks.{match[1]}.{n}.{kind}": t for n, t in zip(names, tensor.chunk(3, dim=0))}
    if match and match[2] in _CT2_BLOCK:
        return {f"blocks.{match[1]}.{_CT2_BLOCK[match[2]]}": tensor}
    hint = ": quantized models are not supported, convert with --quantization float16" if "scale" in name else ""
    raise EncoderFileError(path, f"unknown encoder variable encoder/{name}{hint}")


def encoder_prefix(keys: Iterable[str], prefixes: tuple[str, ...] = HF_PREFIXES) -> str | None:
    """The first of `prefixes` that some key starts with (where a checkpoint keeps its encoder)."""
    keys = list(keys)
    return next((p for p in prefixes if any(k.startswith(p) for k in keys)), None)


def transformers_config(config: Mapping, path: str | os.PathLike) -> WhisperEncoderConfig:
    """A transformers Whisper `config.json` (as a dict) -> our config; refuses other models."""
    if config.get("model_type") != "whisper":
        raise EncoderFileError(path, f"model_type {config.get('model_type')!r} is not 'whisper'")
    if config.get("activation_function", "gelu") != "gelu":
        raise EncoderFileError(path, f"activation {config['activation_function']!r} is not Whisper's exact GELU")
    sizes = _pick(config, _HF_CONFIG_KEYS, path)
    ffn = config.get("encoder_ffn_dim", FFN_RATIO * sizes["d_model"])
    if ffn != FFN_RATIO * sizes["d_model"]:
        raise EncoderFileError(path, f"encoder_ffn_dim {ffn} is not {FFN_RATIO} x d_model {sizes['d_model']}")
    return _config(path, **sizes)


def from_transformers(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike) -> State:
    """transformers' encoder tensors (any prefix of `HF_PREFIXES` still on) -> our state (float32)."""
    prefix = encoder_prefix(tensors)
    if prefix is None:
        raise EncoderFileError(path, f"has no encoder tensors ({' or '.join(p + '*' for p in HF_PREFIXES)})")
    return {_hf_name(k[len(prefix):]): _float32(v, k, path) for k, v in tensors.items() if k.startswith(prefix)}


def _hf_name(name: str) -> str:
    """`layers.3.self_attn.q_proj.weight` -> `blocks.3.attn.query.weight`; top-level names by table;
    anything else unchanged (`build_encoder` then reports it as unexpected)."""
    if name in _HF_TOP:
        return _HF_TOP[name]
    parts = name.split(".")
    if parts[0] == "layers" and len(parts) > 3:
        module = ".".join(parts[2:-1])
        return f"blocks.{parts[1]}.{_HF_BLOCK_MODULES.get(module, module)}.{parts[-1]}"
    return name


def openai_config(dims: Mapping, path: str | os.PathLike) -> WhisperEncoderConfig:
    """OpenAI's checkpoint `dims` (n_mels, n_audio_ctx, n_audio_state, ...) -> our config."""
    return _config(path, **_pick(dims, _OPENAI_DIMS, path))


def from_openai(state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> State:
    """OpenAI's `model_state_dict` -> our state: the `encoder.` entries, prefix dropped, float32."""
    return {k[len(OPENAI_PREFIX):]: _float32(v, k, path) for k, v in state.items() if k.startswith(OPENAI_PREFIX)}


def _pick(source: Mapping, keys: Mapping[str, str], path) -> dict[str, int]:
    """Our config fields from a checkpoint's dict, through a {ours: theirs} table."""
    missing = [theirs for theirs in keys.values() if theirs not in source]
    if missing:
        raise EncoderFileError(path, f"config lacks {', '.join(missing)}")
    return {ours: source[theirs] for ours, theirs in keys.items()}


def _config(path, **sizes) -> WhisperEncoderConfig:
    try:
        return WhisperEncoderConfig(**{k: int(v) for k, v in sizes.items()})
    except (TypeError, ValueError) as error:
        raise EncoderFileError(path, f"bad encoder sizes: {error}") from None


def _float32(value, name: str, path) -> torch.Tensor:
    """A stored tensor (numpy or torch, float16/32/bf16) as float32; integers are refused."""
    tensor = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        kind = getattr(tensor, "dtype", type(tensor).__name__)
        raise EncoderFileError(path, f"{name} is {kind}, not floating point (quantized weights are not supported)")
    return tensor.float()


def _count_blocks(state: State) -> int:
    indices = {int(k.split(".")[1]) for k in state if k.startswith("blocks.")}
    return max(indices) + 1 if indices else 0
