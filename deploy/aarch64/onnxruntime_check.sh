#!/usr/bin/env bash
# onnxruntime on aarch64, emulated: do its int8 kernels compute what an ONNX model file says?
# The runtime's own check (edge_ser.kernel_check, what `edge-ser check` runs on a board) under
# qemu-aarch64 as a Raspberry Pi 4 core (cortex-a72: no int8 dot product), a Pi 5 core
# (cortex-a76: sdot) and qemu's `max` (i8mm, SVE), on log-mel windows of EmoDB clips computed
# on the host. Emulated, not a board: it checks arithmetic, not speed.
#
#   deploy/aarch64/onnxruntime_check.sh [MODEL.onnx...]     (default: the packaged default model)
#
# Needs qemu-user, and arm64 among dpkg's architectures (once, as root: dpkg --add-architecture
# arm64 && apt-get update). The first run downloads (apt-get download, pip download; nothing is
# installed) an aarch64 Python 3.11 with numpy and the host's onnxruntime version into
# ARM64_ROOT (default ~/.cache/edge-ser-arm64). PYTHON: the host interpreter with edge_ser
# (default python3); EDGE_SER_DATA: the corpora; QEMU_CPUS: the emulated cores.
# Exit status 0 when every model's kernels agree with its reference arithmetic on every core.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python3}
ARM64_ROOT=${ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-ser-arm64}
QEMU_CPUS=${QEMU_CPUS:-cortex-a72 cortex-a76 max}
N_CLIPS=40
# Debian packages of an aarch64 Python 3.11 that can import numpy and onnxruntime.
DEBS=(libc6 libstdc++6 libgcc-s1 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib zlib1g libexpat1
      libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libtinfo6 libncursesw6 libreadline8 libuuid1)

command -v qemu-aarch64 >/dev/null || { echo "onnxruntime_check: qemu-aarch64 not found: apt-get install qemu-user" >&2; exit 2; }
dpkg --print-foreign-architectures | grep -qx arm64 || {
  echo "onnxruntime_check: arm64 is not a dpkg architecture: dpkg --add-architecture arm64 && apt-get update" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT  # downloads, and the windows (EmoDB features): never kept

prepare() {  # the aarch64 Python, numpy and onnxruntime under $ARM64_ROOT
  local tmp=$WORK/download ort numpy
  mkdir -p "$tmp"
  ort=$("$PYTHON" -c "import onnxruntime; print(onnxruntime.__version__)")
  numpy=$("$PYTHON" -c "import numpy; print(numpy.__version__)")
  echo "== preparing $ARM64_ROOT: Debian arm64 Python 3.11, numpy $numpy, onnxruntime $ort"
  (cd "$tmp" && apt-get download -q "${DEBS[@]/%/:arm64}")
  mkdir -p "$ARM64_ROOT/site"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$ARM64_ROOT"; done
  "$PYTHON" -m pip download -q -d "$tmp/wheels" --only-binary=:all: --no-deps --python-version 3.11 \
    --implementation cp --abi cp311 --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 \
    --platform manylinux2014_aarch64 "onnxruntime==$ort" "numpy==$numpy"
  for wheel in "$tmp"/wheels/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$ARM64_ROOT/site"; done
}
[ -x "$ARM64_ROOT/usr/bin/python3.11" ] && [ -d "$ARM64_ROOT/site/onnxruntime" ] || prepare

export LD_LIBRARY_PATH=$ARM64_ROOT/lib/aarch64-linux-gnu:$ARM64_ROOT/usr/lib/aarch64-linux-gnu
export PYTHONHOME=$ARM64_ROOT/usr PYTHONPATH=$ARM64_ROOT/site:$ROOT PYTHONDONTWRITEBYTECODE=1
guest() {  # guest CPU ARGS...: the aarch64 Python on an emulated CPU, its own /proc/cpuinfo
  local cpu=$1
  shift
  QEMU_LD_PREFIX=$ARM64_ROOT/cpu-$cpu qemu-aarch64 -cpu "$cpu" "$ARM64_ROOT/usr/bin/python3.11" "$@"
}

MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=("$ROOT/edge_ser/models/default.onnx")
PAIRS=()
for i in "${!MODELS[@]}"; do
  PAIRS+=("${MODELS[$i]}" "$WORK/windows_$i.npy")
  (cd "$ROOT" && env -u PYTHONHOME -u PYTHONPATH -u LD_LIBRARY_PATH "$PYTHON" - "${MODELS[$i]}" "$WORK/windows_$i.npy" "$N_CLIPS" <<'EOF'
import sys
import numpy as np
from benchmarks.clips import data_root, emodb_windows
from edge_ser.recognizer import Recognizer
windows = emodb_windows(Recognizer(sys.argv[1]), int(sys.argv[3]))
if windows is None:
    sys.exit(f"onnxruntime_check: no EmoDB clips under {data_root()} (set EDGE_SER_DATA)")
np.save(sys.argv[2], windows)
EOF
  )
done

status=0
for cpu in $QEMU_CPUS; do
  mkdir -p "$ARM64_ROOT/cpu-$cpu/proc"
  ln -sfn ../lib "$ARM64_ROOT/cpu-$cpu/lib"  # the guest loader and libc, under the prefix
  ln -sfn ../usr "$ARM64_ROOT/cpu-$cpu/usr"
  guest "$cpu" "$HERE/onnxruntime_check.py" --cpuinfo > "$ARM64_ROOT/cpu-$cpu/proc/cpuinfo"
  echo "== qemu-aarch64 -cpu $cpu"
  guest "$cpu" "$HERE/onnxruntime_check.py" "${PAIRS[@]}" || status=1
done
echo "== $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
