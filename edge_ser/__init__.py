"""edge-ser: speech emotion recognition on the device."""
__version__ = "0.1.0"
