"""The one exception for unusable weight files: a single line that starts with the file's path."""
from __future__ import annotations

import os


class EncoderFileError(ValueError):
    """A weight file that cannot be loaded: `"<path>: <reason>"`, always one line.

    `path` is kept as given (for several parts, their paths joined with " + ")."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = " ".join(str(reason).split())  # one line, whatever the cause said
        super().__init__(f"{self.path}: {self.reason}")
