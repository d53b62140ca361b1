"""Cross-attention fusion of acoustic features with a pretrained encoder's frames (Deeb,
Savchenko and Makarov, 2025), segmental average pooling over speech segments (Hyeon, Oh and
Choi, 2024) and SAMSG masking on the pretrained transformer (Kim and Lee, 2025).

Imports nothing: callers import the modules (`train.fusion.model`, `train.fusion.head`, ...)."""
