"""One table over many runs (`python -m train table`): each run's pooled UA in each result set
(e.g. single, reverb_0.3s, ...), then the mean per corpus and protocol. For questions asked
of every run at once, such as how all clean-trained runs fare in a room; the per-fold detail
stays in each run's own result sets and in `train report`."""
from __future__ import annotations

import datetime
import json
import pathlib
import re

import numpy as np

from .records import write_json, write_text
from .run_dir import read_run_config


def pooled(run: pathlib.Path, result_set: str) -> dict:
    """{"ua", "wa"} of a run's complete result set, else ValueError."""
    path = run / result_set / "summary.json"
    if not path.exists():
        raise ValueError(f"{run}: no result set {result_set!r} ({path} missing)")
    summary = json.loads(path.read_text())
    if not summary.get("complete"):
        raise ValueError(f"{run}: result set {result_set!r} lacks folds ({summary.get('n_folds')} on disk)")
    return {k: summary["pooled"][k] for k in ("ua", "wa")}


def write_table(name: str, what: str, runs: list[pathlib.Path], result_sets: list[str], out_dir: pathlib.Path) -> pathlib.Path:
    """`<out_dir>/<name>.{json,md}`; every run must have every result set, complete."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"table name must be letters, digits, '_', '.' or '-', got {name!r}")
    if not result_sets or len(set(result_sets)) != len(result_sets):
        raise ValueError(f"result sets must be distinct and at least one, got {','.join(result_sets)!r}")
    what = what.rstrip(". ")
    rows = []
    for run in runs:
        config = read_run_config(run)["run"]
        rows.append({"run": str(run), "corpus": config["corpus"], "protocol": config["protocol"],
                     **{s: pooled(run, s) for s in result_sets}})
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / f"{name}.json", {"name": name, "what": what, "date": date, "runs": rows})
    lines = [f"# {name}", "", f"{what}. Pooled UA %.", "",
             "| run | " + " | ".join(result_sets) + " |", "|---|" + "---:|" * len(result_sets)]
    lines += [f"| `{r['run']}` | " + " | ".join(f"{100 * r[s]['ua']:.1f}" for s in result_sets) + " |" for r in rows]
    for corpus, protocol in dict.fromkeys((r["corpus"], r["protocol"]) for r in rows):
        mine = [r for r in rows if (r["corpus"], r["protocol"]) == (corpus, protocol)]
        lines.append(f"| **mean of {len(mine)} {corpus} {protocol} runs** | "
                     + " | ".join(f"{100 * np.mean([r[s]['ua'] for r in mine]):.1f}" for s in result_sets) + " |")
    lines += ["", f"Made {date} with `python -m train table --name {name} --result-sets {','.join(result_sets)} RUN...` "
              "over the runs above (run directories are not kept in the repository)."]
    write_text(out_dir / f"{name}.md", "\n".join(lines) + "\n")
    return out_dir / f"{name}.md"
