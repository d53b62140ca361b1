"""edge-ser: speech emotion recognition on the device.

    import edge_ser
    prediction = edge_ser.Recognizer("model.onnx").predict("clip.wav")
"""
__version__ = "0.1.0"

__all__ = ["Recognizer", "Prediction", "Segment", "Window", "NO_SPEECH", "__version__"]


def __getattr__(name):
    # Lazy, so `import edge_ser` (and `edge-ser --version`) does not load onnxruntime.
    if name == "NO_SPEECH":  # a string of the contract: no need to load the recognizer for it
        from .contract import NO_SPEECH

        return NO_SPEECH
    if name in ("Recognizer", "Prediction", "Segment", "Window"):
        from . import recognizer

        return getattr(recognizer, name)
    raise AttributeError(f"module 'edge_ser' has no attribute {name!r}")
