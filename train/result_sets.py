"""Names of derived result sets that carry a value: `noisy_<snr>db` (recorded noise) and
`reverb_<rt60>s` (simulated rooms), both from train/degraded.py. No torch here: the benchmark
report reads these names too."""
from __future__ import annotations

import dataclasses
import math
import re


@dataclasses.dataclass(frozen=True)
class Degradation:
    """One kind of degraded test clip, its result-set names and how tables and plots show it."""
    prefix: str  # result set "<prefix>_<value><unit>"
    unit: str
    axis: str  # what the value is, with its unit
    scene: str  # what a table or plot of it is titled with
    cleaner_above: bool  # a larger value is a cleaner clip (SNR), or a dirtier one (RT60)

    def name(self, value: float) -> str:
        """"noisy_10db", "noisy_-5db", "reverb_0.6s"."""
        return f"{self.prefix}_{value:g}{self.unit}"

    def value_of(self, result_set: str) -> float | None:
        """The value of one of this kind's result sets; None for any other name."""
        match = re.fullmatch(rf"{self.prefix}_(.+){self.unit}", result_set)
        if not match:
            return None
        try:
            value = float(match.group(1))
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def column(self, value: float) -> str:
        return f"{value:g} {self.unit.replace('db', 'dB')}"


NOISE = Degradation("noisy", "db", "SNR (dB)", "in household noise", cleaner_above=True)
REVERB = Degradation("reverb", "s", "RT60 (s)", "in simulated rooms (reverberation)", cleaner_above=False)
DEGRADATIONS = (NOISE, REVERB)


def degraded(result_set: str) -> bool:
    """True for a result set scored on degraded clips (noise, reverberation), not clean ones."""
    return any(d.value_of(result_set) is not None for d in DEGRADATIONS)
