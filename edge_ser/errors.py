"""Errors the runtime raises for bad input or unwritable output; the CLI prints each as one line,
no traceback."""


class EdgeSerError(Exception):
    """Base class: the message names the problem and the input it came from."""


class AudioError(EdgeSerError):
    """Audio that cannot be read or used: unreadable, empty, NaN/inf, unsupported format."""


class ModelError(EdgeSerError):
    """A model file that cannot be used: missing, unreadable, bad metadata, wrong input."""


class OutputError(EdgeSerError):
    """A results file that cannot be written: missing directory, no permission, full disk."""
