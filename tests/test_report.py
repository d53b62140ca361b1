"""The benchmark report: its figures are the input's, and a missed target shows as FAIL."""
import json

from benchmarks import report


def bench(c_ms: float, scipy_ms: float, librosa_ms: float) -> dict:
    def entry(impl, ms):
        return {"group": "log-mel 3 s", "name": f"test_log_mel[{impl}-3]", "extra_info":
                {"kind": "features", "impl": impl, "clip_seconds": 3},
                "stats": {"median": ms / 1e3, "min": ms / 1e3 * 0.9, "rounds": 10}}
    return {"datetime": "2026-11-22T00:00:00", "machine_info": {"loadavg_at_start": [0.5, 0.4, 0.3]},
            "benchmarks": [entry("edge_ser_c", c_ms), entry("scipy_fft", scipy_ms),
                           entry("numpy_reference", scipy_ms * 3), entry("librosa", librosa_ms)]}


def run(tmp_path, data: dict) -> str:
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(data))
    out = tmp_path / "report.md"
    assert report.main([str(src), "--out", str(out)]) == 0
    return out.read_text()


def test_passing_targets_and_input_figures(tmp_path):
    text = run(tmp_path, bench(c_ms=0.2, scipy_ms=0.5, librosa_ms=1.6))
    assert "| C log-mel vs best numpy path, 3 s | <= 0.50x | 0.40x (0.200 ms vs scipy_fft 0.500 ms) | PASS |" in text
    assert "| C log-mel vs librosa, 3 s | >= 6x faster | 8.0x faster | PASS |" in text
    assert "0.50 / 0.40 / 0.30" in text


def test_missed_targets_fail(tmp_path):
    text = run(tmp_path, bench(c_ms=0.3, scipy_ms=0.5, librosa_ms=1.5))
    assert "| C log-mel vs best numpy path, 3 s | <= 0.50x | 0.60x (0.300 ms vs scipy_fft 0.500 ms) | FAIL |" in text
    assert "| C log-mel vs librosa, 3 s | >= 6x faster | 5.0x faster | FAIL |" in text


def test_unreadable_json_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert report.main([str(bad), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json" in err
