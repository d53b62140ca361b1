"""What a run leaves behind: files written atomically, and the environment a result depends on.
No training code here, so any module can record without importing the runner."""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import subprocess


def environment() -> dict:
    """What a result depends on besides the config: versions, commit, date, host."""
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=pathlib.Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "commit": commit, "torch_threads": torch.get_num_threads()}


RESULTS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results"  # committed: portable


def write_text(path: pathlib.Path, text: str) -> None:
    """Write via a temporary file renamed into place, so a reader never sees half a file. A
    committed results file (under benchmarks/results) names the data root DATA, not this
    machine's path to it."""
    if pathlib.Path(path).resolve().is_relative_to(RESULTS):
        text = portable_paths(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # own name: --folds processes share a run directory
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: pathlib.Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=1))


def portable_paths(text: str) -> str:
    """`text` with the data root's absolute path (EDGE_SER_DATA or its default) written DATA."""
    from .data import default_data_root

    root = str(pathlib.Path(default_data_root()).resolve())
    return text.replace(root + "/", "DATA/").replace(root, "DATA")
