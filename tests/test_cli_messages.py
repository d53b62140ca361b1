"""`--output` files (issue 22, finding 13): the permissions `>` would give them, whatever the
temporary file they are written to first; symbolic links and devices left as they are."""
import os
import stat
import subprocess
import sys

import pytest

from conftest import REPO
from edge_ser import outputs
from edge_ser.errors import OutputError
from test_cli import noise, write_wav

TIMEOUT = 60  # s


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A directory with a WAV."""
    root = tmp_path_factory.mktemp("outputs")
    write_wav(root / "clip.wav", noise(1.0, 1))
    return root


# --- results files (finding 13) --------------------------------------------------------------


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_results_file_gets_the_umask_mode(tmp_path, umask_022):
    """mkstemp made every results file 0600 whatever the umask."""
    outputs.write_atomically(str(tmp_path / "results.csv"), "a,b\n")
    assert mode(tmp_path / "results.csv") == 0o644


def test_a_replaced_results_file_keeps_its_mode(tmp_path, umask_022):
    target = tmp_path / "results.csv"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    outputs.write_atomically(str(target), "new\n")
    assert mode(target) == 0o640 and target.read_text() == "new\n"


def test_the_command_writes_results_files_with_the_umask_mode(workspace, tmp_path):
    target = tmp_path / "segments.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "edge_ser", "vad", "--format", "json", "--output", target, "clip.wav"],
                   cwd=workspace, env=env, check=True, timeout=TIMEOUT, preexec_fn=lambda: os.umask(0o027))
    assert mode(target) == 0o640


def test_a_symbolic_link_stays_a_link_to_the_new_results(tmp_path):
    (tmp_path / "real.csv").write_text("old\n")
    os.chmod(tmp_path / "real.csv", 0o604)
    os.symlink("real.csv", tmp_path / "link.csv")
    outputs.write_atomically(str(tmp_path / "link.csv"), "new\n")
    assert os.readlink(tmp_path / "link.csv") == "real.csv"
    assert (tmp_path / "real.csv").read_text() == "new\n" and mode(tmp_path / "real.csv") == 0o604


def test_a_fifo_is_written_through_not_replaced(tmp_path):
    """Renaming over a device or FIFO (`--output /dev/null`) replaced it with a regular file."""
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there: opening to write does not block
    try:
        outputs.check_writable(str(fifo))
        outputs.write_atomically(str(fifo), "results\n")
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert os.read(reader, 100) == b"results\n"
    finally:
        os.close(reader)
    assert os.listdir(tmp_path) == ["results.fifo"]


def test_a_results_file_that_cannot_be_written_is_one_line(tmp_path):
    with pytest.raises(OutputError, match=r"loop: cannot write output \(Too many levels of symbolic links\)"):
        os.symlink("loop", tmp_path / "loop")
        outputs.check_writable(str(tmp_path / "loop"))
