"""Shared fixtures. Tests that need the speech corpora use `data_dir`, which skips without them
(`.ci/run` turns any such skip into a failure, so CI always runs them)."""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA_SKIP_REASON = "speech data not found: set EDGE_SER_DATA"


def data_root() -> pathlib.Path:
    from train.data import default_data_root  # numpy only: fine where torch is not installed

    return default_data_root()


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    root = data_root()
    if not (root / "emodb" / "wav").is_dir():
        # CI sets EDGE_SER_REQUIRE_DATA=1: there a missing corpus fails instead of hiding tests.
        if os.environ.get("EDGE_SER_REQUIRE_DATA") == "1":
            pytest.fail(f"{DATA_SKIP_REASON} (looked in {root}; EDGE_SER_REQUIRE_DATA=1)")
        pytest.skip(f"{DATA_SKIP_REASON} (looked in {root})")
    return root
