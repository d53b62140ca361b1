"""Where the runtime's "no speech" threshold comes from: the share of VAD speech the runtime
measures on the training corpora's clips, on recorded noise and on synthetic non-speech.

    PYTHONPATH=. python benchmarks/speech_share.py      # writes results/speech_share.{json,md,png}

The share is what `Recognizer` measures (edge_ser.recognizer): the seconds of VAD speech in a
clip as a share of one model window (MODEL_WINDOW_SECONDS, the packaged models'), capped at 1.
Speech: every EmoDB clip and
every RAVDESS clip (the corpora the packaged models were trained on). Non-speech: every noise
recording of the data root cut into 3-s windows, and 3-s tones, silence and white noise. For each
candidate threshold the table gives the share of speech clips it would call "no speech" (the
cost) and of non-speech windows it would (the point).
"""
from __future__ import annotations

import argparse
import datetime
import json
import pathlib

import numpy as np

from benchmarks.clips import data_root
from edge_ser import vad
from edge_ser.audio import load_audio
from edge_ser.config import SAMPLE_RATE
from edge_ser.contract import MIN_SPEECH_SHARE

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WINDOW_SECONDS = 3.0  # the non-speech sets are cut into clips of this length
MODEL_WINDOW_SECONDS = 2.0  # the packaged models' window
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
SEED = 20261206
SPEECH_SETS = ("emodb", "ravdess")


def speech_share(audio: np.ndarray) -> float:
    """Mono float32 [samples] at 16 kHz -> its seconds in VAD speech segments as a share of one
    model window, capped at 1."""
    return min(1.0, sum(b - a for a, b in vad.speech_segments(audio)) / MODEL_WINDOW_SECONDS)


def synthetic(seconds: float = WINDOW_SECONDS) -> dict[str, np.ndarray]:
    """Non-speech a user might send: tones, silence, quiet and loud white noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(SEED)
    return {"tone 440 Hz": 0.3 * np.sin(2 * np.pi * 440 * t), "tone 1 kHz": 0.3 * np.sin(2 * np.pi * 1000 * t),
            "silence": np.zeros_like(t), "white noise -20 dBFS": rng.normal(0, 0.1, t.size),
            "white noise -60 dBFS": rng.normal(0, 0.001, t.size)}


def measure(root: pathlib.Path) -> dict:
    speech = dict(zip(SPEECH_SETS, (sorted((root / "emodb" / "wav").glob("*.wav")),
                                    sorted((root / "ravdess").glob("Actor_*/*.flac")))))
    shares = {name: [speech_share(load_audio(str(f))) for f in files] for name, files in speech.items()}
    noise, step = [], int(WINDOW_SECONDS * SAMPLE_RATE)
    for f in sorted((root / "noise").glob("*/*.wav")):
        audio = load_audio(str(f))
        noise += [speech_share(audio[i:i + step]) for i in range(0, len(audio) - step + 1, step)]
    shares["recorded noise (3-s windows)"] = noise
    shares["tones, silence, white noise"] = [speech_share(x.astype(np.float32)) for x in synthetic().values()]
    return shares


def summary(shares: dict[str, list[float]]) -> dict:
    return {name: {"n": len(v), "min": float(np.min(v)), "p1": float(np.percentile(v, 1)),
                   "median": float(np.median(v)), "max": float(np.max(v)),
                   "below": {str(t): float(np.mean(np.array(v) < t)) for t in THRESHOLDS}}
            for name, v in shares.items()}


def markdown(result: dict) -> str:
    head = "| audio | n | min | 1st percentile | median | max | " + " | ".join(
        f"< {t:g}" for t in THRESHOLDS) + " |"
    lines = ["# Share of VAD speech: speech clips against non-speech", "",
             f"Measured {result['date']} by `benchmarks/speech_share.py` (module docstring says how). The runtime's "
             f"threshold is {result['threshold']:g} (`edge_ser.contract.MIN_SPEECH_SHARE`, `--min-speech`): the "
             "columns `< t` give the share of each set a threshold t calls \"no speech\".", "",
             head, "|---" * (6 + len(THRESHOLDS)) + "|"]
    for name, s in result["sets"].items():
        lines.append(f"| {name} | {s['n']} | {s['min']:.3f} | {s['p1']:.3f} | {s['median']:.3f} | {s['max']:.3f} | "
                     + " | ".join(f"{100 * s['below'][str(t)]:.1f} %" for t in THRESHOLDS) + " |")
    lowest = min(s["min"] for name, s in result["sets"].items() if name in SPEECH_SETS)
    lines += ["", f"Share: seconds of VAD speech over one {MODEL_WINDOW_SECONDS:g}-s model window, capped at 1 (so "
              f"{result['threshold']:g} is {result['threshold'] * MODEL_WINDOW_SECONDS:g} s of speech). Rule: well under "
              f"the lowest share of any training clip ({lowest:.2f}), so that a clip with a fraction of the speech of "
              "the sparsest training clip still gets an emotion, while audio in which the VAD finds almost nothing "
              "does not. Tones, silence and white noise are never speech to the VAD; "
              "household noise (dishwashers, vacuum cleaners, streets) often is, so no threshold catches it: "
              "the VAD would have to.", "", "![speech share histograms](speech_share.png)", ""]
    return "\n".join(lines)


def plot(shares: dict[str, list[float]], threshold: float, path: pathlib.Path) -> None:
    """Histograms of the share per set, with the threshold: where speech and non-speech fall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 21)
    for name, values in shares.items():
        ax.hist(values, bins=bins, histtype="step", linewidth=1.5, density=True, label=f"{name} ({len(values)})")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    ax.text(threshold, ax.get_ylim()[1] * 0.95, f" no speech below {threshold:g}", fontsize=8, va="top")
    ax.set_xlabel(f"VAD speech, share of one {MODEL_WINDOW_SECONDS:g}-s model window (capped at 1)")
    ax.set_ylabel("density")
    ax.set_title("Speech share the runtime measures: training clips against non-speech", fontsize=10)
    ax.legend(fontsize=7, loc="center", bbox_to_anchor=(0.5, 0.55))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=pathlib.Path, default=None, help="data root (default: EDGE_SER_DATA)")
    ap.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = ap.parse_args(argv)
    shares = measure(args.data or data_root())
    result = {"date": datetime.date.today().isoformat(), "threshold": MIN_SPEECH_SHARE, "sets": summary(shares)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speech_share.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "speech_share.md").write_text(markdown(result))
    plot(shares, MIN_SPEECH_SHARE, args.out / "speech_share.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
