"""Names of derived result sets that carry a value: `noisy_<snr>db` (train/noisy.py). No torch
here: the benchmark report reads these names too."""
from __future__ import annotations

import math
import re

NOISY = re.compile(r"noisy_(.+)db")


def noisy_name(snr_db: float) -> str:
    """"noisy_10db", "noisy_-5db", "noisy_2.5db"."""
    return f"noisy_{snr_db:g}db"


def snr_of(result_set: str) -> float | None:
    """The SNR (dB) of a `noisy_<snr>db` result set; None for any other name."""
    match = NOISY.fullmatch(result_set)
    if not match:
        return None
    try:
        snr = float(match.group(1))
    except ValueError:
        return None
    return snr if math.isfinite(snr) else None
