"""Host-side export for edge-ser: knowledge distillation, pruning, ONNX (FP32 / INT8) and TFLite
(FP32 / INT8) models that follow the runtime's model contract (docs/model-contract.md), with
parity and accuracy checks. Needs the `train` and `export` extras; the device runtime
(`edge_ser`) never imports it. See docs/export.md."""
