"""`edge-ser info` for people: a short summary of a packaged model, the whole card as JSON,
parameters from the card when the onnx package is absent, and cards free of machine paths."""
from __future__ import annotations

import json
import re
import sys

import pytest

from edge_ser.describe import describe
from edge_ser.packaged import PACKAGED_NAMES, packaged_card, packaged_file
from edge_ser.session import open_session
from test_cli import info_fields, run

SUMMARY_FIELDS = ["model", "task", "labels", "window", "features", "parameters", "file size", "format",
                  "precision", "calibration", "accuracy", "trained on", "licence", "model card"]
# An absolute path of some machine: /home/..., /work/..., C:\\..., ~/...
MACHINE_PATH = re.compile(r"(?<![\w.])(/(?:home|root|work|tmp|mnt|Users|var|opt|srv|data)/|[A-Za-z]:\\\\|~/)")


@pytest.mark.parametrize("name", ["default", "tiny"])
def test_info_summarises_a_packaged_model_in_short_lines(name):
    code, out, err = run("info", name)
    assert code == 0, err
    fields = {k: v.strip() for k, v in info_fields(out).items()}
    assert list(fields) == SUMMARY_FIELDS
    assert all(not v.startswith("{") for v in fields.values())  # no raw JSON
    assert fields["accuracy"].split(" % UA")[0].replace(".", "").isdigit()
    assert fields["model card"] == f"edge-ser info {name} --format json"
    assert "unknown" not in fields["parameters"]


def test_info_json_carries_the_whole_card():
    code, out, err = run("info", "default", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["card"] == open_session(packaged_file("default")).info.card
    assert doc["metadata"]["temperature"] > 1 and doc["summary"]["labels"].startswith("anger")


def test_parameters_come_from_the_card_without_the_onnx_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    fields = dict(describe(str(packaged_file("default"))))
    expected = packaged_card("default")["model"]["parameters"]
    assert fields["parameters"] == f"{expected:,} (from its model card)"


@pytest.mark.parametrize("name", PACKAGED_NAMES)
def test_packaged_cards_carry_no_machine_path(name):
    inside = open_session(packaged_file(name)).info.card
    for card in (packaged_card(name), inside):
        text = json.dumps(card)
        assert not MACHINE_PATH.search(text), MACHINE_PATH.search(text).group(0)


def test_the_machine_path_check_can_fail():
    assert MACHINE_PATH.search(json.dumps({"recipe": "--noise-train /work/shared/data/noise"}))
    assert MACHINE_PATH.search(json.dumps({"data": "C:\\\\Users\\\\me\\\\emodb"}))
    assert not MACHINE_PATH.search(json.dumps({"recipe": "--out runs/fusion/x DATA/noise/household"}))
