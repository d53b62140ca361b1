"""Command-line options generated from configuration dataclasses, and the value parsers the
training, export and pretraining commands share.

A field declares its option in its metadata (`option(default, help, ...)`): help text, a value
parser, choices, and which other runs must agree on it. Adding an option is adding a field.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing

from .result_sets import NOISE, REVERB

# `match` values: what a field must equal for another run's phase 1 to be reused ("phase1", which
# a resumed run must match too) or for a run directory to be resumed ("resume").
PHASE1, RESUME = "phase1", "resume"
MATCH = (PHASE1, RESUME)


def option(default, help: str = "", *, parse=None, choices=None, flag: str | None = None,
           match: str | None = None, cli: bool = True):
    """A dataclass field whose command-line option `add_config_options` generates.

    `parse` turns the option's text into the value (default: the field's type); `flag` replaces
    the `--field-name` spelling; `match` is one of MATCH; `cli=False` keeps it off the command line.
    """
    if match not in (None, *MATCH):
        raise ValueError(f"match must be one of {MATCH}, got {match!r}")
    metadata = {"help": help, "parse": parse, "choices": choices, "flag": flag, "match": match, "cli": cli}
    return dataclasses.field(default=default, metadata=metadata)


def fields_matching(config_class, match: str) -> tuple[str, ...]:
    """Names of the fields that `match` (see MATCH); "resume" includes the "phase1" ones."""
    wanted = MATCH[:MATCH.index(match) + 1]
    return tuple(f.name for f in dataclasses.fields(config_class) if f.metadata.get("match") in wanted)


def add_config_options(parser: argparse.ArgumentParser, config_class, defaults: dict | None = None,
                       only: tuple[str, ...] = ()) -> None:
    """One option per field of `config_class` (or per field in `only`), its default the field's
    unless `defaults` overrides it. A bool defaulting to False is a switch; one defaulting to True
    is turned off by `--no-NAME`."""
    hints = typing.get_type_hints(config_class)
    unknown = set(only) - set(hints)
    if unknown:
        raise ValueError(f"{config_class.__name__} has no fields {sorted(unknown)}")
    for field in dataclasses.fields(config_class):
        if not field.metadata.get("cli", True) or (only and field.name not in only):
            continue
        default = (defaults or {}).get(field.name, field.default)
        name = field.metadata.get("flag") or "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "").replace("%", "%%")
        if hints[field.name] is bool:
            flag = name if not default else "--no-" + field.name.replace("_", "-")
            parser.add_argument(flag, dest=field.name, action="store_false" if default else "store_true",
                                help=help_text)
            continue
        parser.add_argument(name, dest=field.name, type=field.metadata.get("parse") or _value_type(hints[field.name]),
                            default=default, choices=field.metadata.get("choices"),
                            help=f"{help_text} (default: {_shown(default)})".lstrip())


def config_values(args: argparse.Namespace, config_class) -> dict:
    """The fields of `config_class` that `args` has, by name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if hasattr(args, f.name)}


def _value_type(hint):
    """int for `int` and `int | None`, and so on; other types need a `parse`."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = [t for t in typing.get_args(hint) if t is not type(None)] if union else [hint]
    if kinds[0] not in (int, float, str):
        raise TypeError(f"a field of type {hint} needs option(..., parse=...)")
    return kinds[0]


def _shown(default) -> str:
    if isinstance(default, tuple):
        return ",".join(str(v) for v in default) or "none"
    return str(default)


# Value parsers: text -> value, or argparse.ArgumentTypeError naming what was wrong.

def comma_list(text: str) -> tuple[str, ...]:
    """"a, b,,c" -> ("a", "b", "c")."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def patch_size(text: str) -> tuple[int, int]:
    """"16x16" -> (16, 16); "64x4" spans 64 mel bands by 4 frames."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"patch must look like 16x16, got {text!r}") from None
    return h, w


def value_range(text: str, what: str, positive: bool = False) -> tuple[float, float]:
    """"0.2,1.0" -> (0.2, 1.0): two finite numbers, low <= high (and low > 0 if `positive`)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        low = high = float("nan")
    if not (math.isfinite(low) and math.isfinite(high) and low <= high and (low > 0 or not positive)):
        raise argparse.ArgumentTypeError(f"{what} must be LOW,HIGH: two finite numbers, low <= high"
                                         f"{', low above 0' if positive else ''}; got {text!r}")
    return low, high


def value_list(text: str, kind, what: str, positive: bool = False) -> tuple[float, ...]:
    """"20,10,0" -> (20.0, 10.0, 0.0): finite (and > 0 if `positive`), each naming its own
    result set of Degradation `kind`."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and (v > 0 or not positive) for v in values) \
            or len({kind.name(v) for v in values}) != len(values):
        raise argparse.ArgumentTypeError(f"{what} must be a comma list of distinct finite "
                                         f"{'positive ' if positive else ''}numbers, got {text!r}")
    return values


def snr_range(text: str) -> tuple[float, float]:
    return value_range(text, "the SNR range (dB)")


def rt60_range(text: str) -> tuple[float, float]:
    return value_range(text, "the RT60 range (s)", positive=True)


def snr_list(text: str) -> tuple[float, ...]:
    """"20,10,0" -> (20.0, 10.0, 0.0) dB."""
    return value_list(text, NOISE, "SNRs (dB)")


def rt60_list(text: str) -> tuple[float, ...]:
    """"0.3,0.6" -> (0.3, 0.6) seconds."""
    return value_list(text, REVERB, "RT60s (s)", positive=True)


def shift_list(text: str) -> tuple[int, ...]:
    """"-20,0,20" -> (-20, 0, 20) frames."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shifts must be a comma list of integers (frames), got {text!r}") from None
