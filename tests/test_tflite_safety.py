"""Corrupt TFLite files are refused in one line naming the file (edge_ser.tflite_check), never
crash the process, allocate gigabytes or print a raw exception (issue 22, findings 4, 5, 12).

Loads that could crash the interpreter run in child processes (tests/tflite_mutations.py), so a
crash fails the test instead of ending the run."""
import pathlib
import subprocess
import sys

import pytest

import tflite_mutations
from conftest import REPO
from edge_ser.errors import ModelError
from edge_ser.session import open_session

pytest.importorskip("ai_edge_litert", reason="TFLite models need the tflite extra")
pytest.importorskip("flatbuffers", reason="building TFLite test models needs flatbuffers")


@pytest.fixture(scope="module")
def tiny() -> bytes:
    return tflite_mutations.build_tiny_tflite()


def write(tmp_path: pathlib.Path, name: str, data: bytes) -> pathlib.Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def load_in_child(path: pathlib.Path, memory_bytes: int = 4 << 30) -> tflite_mutations.Outcome:
    return tflite_mutations.load_in_children([path], timeout=30, memory_bytes=memory_bytes)[0]


def assert_refused(outcome: tflite_mutations.Outcome, fragment: str) -> None:
    """The child got ModelError in one line naming the file (checked there), saying `fragment`."""
    assert outcome.kind == "model_error", outcome
    assert "corrupt TFLite file: " in outcome.detail and fragment in outcome.detail, outcome.detail


def graph(model):
    return model.subgraphs[0]


def test_the_tiny_model_loads_and_runs(tiny, tmp_path):
    outcome = load_in_child(write(tmp_path, "tiny.tflite", tiny))
    assert outcome.kind == "ok", outcome


def test_absent_weights_are_refused_not_a_crash(tiny, tmp_path):
    """FULLY_CONNECTED with weights -1 ("no tensor") was a SIGSEGV in LiteRT's XNNPACK delegate."""
    def drop_weights(model):
        graph(model).operators[1].inputs = [2, -1, 4]

    path = write(tmp_path, "no_weights.tflite", tflite_mutations.edited(tiny, drop_weights))
    assert_refused(load_in_child(path), "operator 1 (builtin operator 9) has no tensor for its input 1")


def test_absent_bias_is_allowed(tiny, tmp_path):
    def drop_bias(model):
        graph(model).operators[1].inputs = [2, 3, -1]

    outcome = load_in_child(write(tmp_path, "no_bias.tflite", tflite_mutations.edited(tiny, drop_bias)))
    assert outcome.kind == "ok", outcome


def test_an_empty_constant_is_allowed(tiny, tmp_path):
    """Converters write zero-element constants with no data (a MEAN over no axes, a RESHAPE to a
    scalar): an operator reading one reads nothing, and the model is valid."""
    from ai_edge_litert import schema_py_generated as schema

    def mean_over_no_axes(model):
        g = graph(model)
        no_axes, copy = schema.TensorT(), schema.TensorT()
        no_axes.name, no_axes.shape, no_axes.type, no_axes.buffer = b"no_axes", [0], schema.TensorType.INT32, 0
        copy.name, copy.shape, copy.type, copy.buffer = b"mean_again", list(g.tensors[2].shape), 0, 0
        g.tensors += [no_axes, copy]
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [2, len(g.tensors) - 2], [len(g.tensors) - 1]
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.ReducerOptions, schema.ReducerOptionsT()
        g.operators.insert(1, op)
        g.operators[2].inputs = [len(g.tensors) - 1, 3, 4]

    outcome = load_in_child(write(tmp_path, "empty_axes.tflite", tflite_mutations.edited(tiny, mean_over_no_axes)))
    assert outcome.kind == "ok", outcome


def test_a_tensor_of_gigabytes_is_refused_before_allocation(tiny, tmp_path):
    """A declared 2 GiB intermediate tensor made LiteRT allocate it, and fail in XNNPACK when
    the memory is not there (the child's address space is capped at 1.5 GiB so that the test
    never takes the machine's memory)."""
    def huge_mean(model):
        graph(model).tensors[2].shape = [1, 1 << 29]

    path = write(tmp_path, "huge.tflite", tflite_mutations.edited(tiny, huge_mean))
    assert_refused(load_in_child(path, memory_bytes=3 << 29), "tensor 2 of shape [1, 536870912] needs more than")


@pytest.mark.parametrize("shape, fragment", [([1, -5], "has a dimension below 0"),
                                             ([1] * 9 + [64], "has rank 10, more than 8")])
def test_bad_shapes_are_refused(tiny, tmp_path, shape, fragment):
    def reshape(model):
        graph(model).tensors[2].shape = shape

    path = write(tmp_path, "shape.tflite", tflite_mutations.edited(tiny, reshape))
    assert_refused(load_in_child(path), fragment)


def test_an_output_no_operator_writes_is_refused(tiny, tmp_path):
    """The graph's output left unwritten gave "Tensor data is null" from the interpreter."""
    def unwritten_output(model):
        logits = graph(model).tensors[5]
        extra = type(logits)()
        extra.name, extra.shape, extra.type, extra.buffer = b"other", list(logits.shape), logits.type, 0
        graph(model).tensors.append(extra)
        graph(model).operators[1].outputs = [6]

    path = write(tmp_path, "unwritten.tflite", tflite_mutations.edited(tiny, unwritten_output))
    assert_refused(load_in_child(path), "output tensor 5 is written by no operator")


def test_weights_without_data_are_refused(tiny, tmp_path):
    def weights_to_empty_buffer(model):
        graph(model).tensors[3].buffer = 0

    path = write(tmp_path, "empty.tflite", tflite_mutations.edited(tiny, weights_to_empty_buffer))
    assert_refused(load_in_child(path), "operator 1 reads tensor 3, which is no input, constant")


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: setattr(graph(m).tensors[3], "buffer", 40), "tensor 3 points at buffer 40 of 5"),
    (lambda m: setattr(graph(m).operators[1], "opcodeIndex", 7), "operator 1 uses operator code 7 of 2"),
    (lambda m: setattr(graph(m).operators[1], "inputs", [2, 3, 99]), "inputs name tensor 99, outside 0..5"),
    (lambda m: setattr(graph(m), "inputs", [-1]), "subgraph 0's inputs name tensor -1"),
])
def test_indices_out_of_range_are_refused(tiny, tmp_path, edit, fragment):
    assert_refused(load_in_child(write(tmp_path, "index.tflite", tflite_mutations.edited(tiny, edit))), fragment)


def test_weights_stored_past_the_end_of_the_file_are_refused(tiny, tmp_path):
    """The >2 GB layout: a buffer's offset and size point after the flatbuffer."""
    def weights_outside(model):
        weights = model.buffers[2]
        weights.data, weights.offset, weights.size = None, 100, 1 << 20

    path = write(tmp_path, "outside.tflite", tflite_mutations.edited(tiny, weights_outside))
    assert_refused(load_in_child(path), "buffer 2 (1048576 bytes at byte 100) runs past the end of the")


@pytest.mark.parametrize("tensor", [0, 3])
def test_a_tensor_name_that_is_not_utf8_is_refused_in_one_line(tiny, tmp_path, tensor):
    """Finding 4: it was "unexpected error: UnicodeDecodeError" without the file's name."""
    def bad_name(model):
        graph(model).tensors[tensor].name = b"log\xffmel"

    path = write(tmp_path, "name.tflite", tflite_mutations.edited(tiny, bad_name))
    with pytest.raises(ModelError) as caught:
        open_session(path)
    message = str(caught.value)
    assert message == f"{path}: corrupt TFLite file: subgraph 0 tensor {tensor}'s name is not valid UTF-8"


def test_a_metadata_name_that_is_not_utf8_is_refused(tiny, tmp_path):
    def bad_metadata_name(model):
        model.metadata[0].name = b"\xc3("

    path = write(tmp_path, "meta.tflite", tflite_mutations.edited(tiny, bad_metadata_name))
    with pytest.raises(ModelError, match="metadata entry 0's name is not valid UTF-8"):
        open_session(path)


@pytest.mark.parametrize("corrupt, fragment", [
    (lambda b: (1 << 20).to_bytes(4, "little") + b[4:], "the Model table at byte 1048576 lies outside"),
    (lambda b: b[:len(b) // 2], "lies outside the"),
])
def test_garbage_offsets_give_a_plain_line(tiny, tmp_path, corrupt, fragment):
    """Finding 12: an offset past the end printed struct.error's "unpack_from requires ..."."""
    path = write(tmp_path, "garbage.tflite", corrupt(tiny))
    with pytest.raises(ModelError) as caught:
        open_session(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: corrupt TFLite file: ") and fragment in message, message
    assert "unpack" not in message and "\n" not in message


def test_the_metadata_reader_alone_gives_a_plain_line_for_garbage_offsets(tiny):
    from edge_ser.contract import tflite_info

    with pytest.raises(ModelError) as caught:
        tflite_info((1 << 20).to_bytes(4, "little") + tiny[4:], "garbage.tflite")
    assert str(caught.value) == "garbage.tflite: corrupt TFLite file (an offset in it points outside the file)"


def test_cli_refuses_a_crashing_file_with_rc_2(tiny, tmp_path):
    def drop_weights(model):
        graph(model).operators[1].inputs = [2, -1, 4]

    path = write(tmp_path, "no_weights.tflite", tflite_mutations.edited(tiny, drop_weights))
    done = subprocess.run([sys.executable, "-m", "edge_ser", "info", str(path)], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env={**tflite_mutations.child_env(), "OMP_WAIT_POLICY": "PASSIVE"})
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "corrupt TFLite file" in lines[0], done.stderr


def test_seeded_mutations_never_crash_hang_or_raise_anything_else(tiny, tmp_path):
    """250 byte flips, 16/32-bit overwrites and truncations of the tiny model's structure
    (weights left alone), loaded in one child process after another: each loads and runs, or
    is refused with ModelError in one line naming the file. (Today's code: a SIGSEGV and two
    UnicodeDecodeErrors. `python tests/tflite_mutations.py MODEL` runs more, on any model.)"""
    cases = tflite_mutations.mutations(tiny, 250, 0, tflite_mutations.weight_spans(tiny))
    paths = [write(tmp_path, f"m{i:04d}.tflite", mutated) for i, (_, mutated) in enumerate(cases)]
    outcomes = tflite_mutations.load_in_children(paths, timeout=10)
    bad = [(what, o) for (what, _), o in zip(cases, outcomes) if o.kind not in ("ok", "model_error")]
    assert not bad, bad[:5]
