"""One fuzzing process for one target: `python -m fuzz.worker` (started by `python -m fuzz`).

With atheris, coverage comes from tracing the runtime's Python lines (`engine.LineCoverage`;
edge_ser only: numpy's and the harness's own branches would only distract libFuzzer); the engine
runs until its runs or seconds are spent. Arguments arrive as one JSON object on the command line.
"""
from __future__ import annotations

import json
import pathlib
import sys


def main(spec: dict) -> None:
    engine = spec["engine"]
    from . import engine as engines
    from . import targets

    target = spec["target"]
    if target in targets.MODEL_TARGETS:
        targets.warm_model_imports(target)
    stats = pathlib.Path(spec["stats"])
    recorder = engines.Recorder(target, targets.TARGETS[target], pathlib.Path(spec["findings"]), stats,
                                spec["progress_seconds"])
    recorder.write_stats()
    corpus = [pathlib.Path(d) for d in spec["corpus"]]
    if engine == "atheris":
        dictionary = pathlib.Path(spec["dictionary"]) if spec.get("dictionary") else None
        engines.run_atheris(recorder, corpus, spec["seed"], spec["runs"], spec["seconds"], spec["max_len"],
                            spec["timeout"], spec["rss_limit_mb"], dictionary)
    else:
        engines.run_plain(recorder, corpus, spec["seed"], spec["runs"], spec["seconds"], spec["max_len"])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
