"""Host-side training for edge-ser: corpora, speaker-independent protocols, a small CNN, DeiT,
attention rollout, SAMSG masking and masked-spectrogram pretraining. Needs the `train` extra
(torch, timm); the device runtime (`edge_ser`) never imports this package."""
