#!/usr/bin/env bash
# The packaged runtime on aarch64, emulated, end to end: build the wheel from this repository for
# aarch64, install it with its aarch64 dependencies from PyPI (numpy, onnxruntime, ai-edge-litert)
# into an arm64 Debian bookworm Python 3.11 (the Python of Raspberry Pi OS bookworm), run
# `edge-ser infer --format json` with the packaged models on EmoDB clips under qemu-aarch64, and
# compare labels and scores with the same command on this (x86-64) machine (compare_runs.py).
#
#   deploy/aarch64/package_check.sh            exit 0 = every model on every core agrees (PASS)
#
# Needs qemu-user, the Debian cross compiler and arm64 among dpkg's architectures (once, as root:
#   apt-get install qemu-user gcc-aarch64-linux-gnu && dpkg --add-architecture arm64 && apt-get update)
# and network access to the Debian mirror and PyPI on the first run. Nothing is installed on the
# host: `apt-get download` + `dpkg -x` fetch the arm64 Python 3.11 and its headers into ARM64_ROOT
# (default ~/.cache/edge-ser-arm64-package, reused afterwards); the wheel and the installed
# packages go to a temporary directory (pip's cache keeps the downloads).
#
# Environment: PYTHON, the host interpreter with edge_ser's build and run dependencies (default
# python3); EDGE_SER_DATA, the corpora; QEMU_CPUS, the emulated cores (default: cortex-a72 = Pi 4,
# cortex-a76 = Pi 5); MODELS (default "default tiny"); N_CLIPS (default 24, spread over the corpus).
#
# The wheel is cross-compiled (aarch64-linux-gnu-gcc, setup.py's flags) because qemu-user without
# binfmt_misc cannot run a compiler's child processes; a board compiles the same sources itself.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python3}
ARM64_ROOT=${ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-ser-arm64-package}
QEMU_CPUS=${QEMU_CPUS:-cortex-a72 cortex-a76}
MODELS=${MODELS:-default tiny}
N_CLIPS=${N_CLIPS:-24}
TOLERANCE=1e-3
CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
# Debian arm64 packages: a Python 3.11 that imports numpy, onnxruntime and ai-edge-litert, and its headers.
DEBS=(libc6 libstdc++6 libgcc-s1 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev
      zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libtinfo6 libncursesw6 libreadline8 libuuid1)
# The manylinux tags bookworm's glibc 2.36 accepts (pip does not expand --platform by itself).
PLATFORMS=(linux_aarch64 manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_27_aarch64 manylinux_2_28_aarch64
           manylinux_2_31_aarch64 manylinux_2_34_aarch64 manylinux_2_35_aarch64 manylinux_2_36_aarch64)

need() { command -v "$1" >/dev/null || { echo "package_check: $1 not found: apt-get install $2" >&2; exit 2; }; }
need qemu-aarch64 qemu-user
need "$CROSS_CC" gcc-aarch64-linux-gnu
dpkg --print-foreign-architectures | grep -qx arm64 || {
  echo "package_check: arm64 is not a dpkg architecture: dpkg --add-architecture arm64 && apt-get update" >&2; exit 2; }
DATA=$(cd "$ROOT" && "$PYTHON" -c "from train.data import default_data_root; print(default_data_root())")
[ -d "$DATA/emodb/wav" ] || { echo "package_check: no EmoDB clips under $DATA/emodb/wav (set EDGE_SER_DATA)" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT  # the wheel, the installed packages, the outputs (they name EmoDB clips)
STARTED=$SECONDS
phase() { echo "== [$((SECONDS - STARTED)) s] $*"; }

prepare_root() {  # the arm64 Python 3.11 and its headers under $ARM64_ROOT
  phase "preparing $ARM64_ROOT: Debian bookworm arm64 Python 3.11 (apt-get download, dpkg -x)"
  mkdir -p "$WORK/debs" "$ARM64_ROOT"
  (cd "$WORK/debs" && apt-get download -q "${DEBS[@]/%/:arm64}")
  for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$ARM64_ROOT"; done
}
[ -x "$ARM64_ROOT/usr/bin/python3.11" ] && [ -f "$ARM64_ROOT/usr/include/python3.11/Python.h" ] || prepare_root

build_wheel() {  # the repository's tracked files (as they are now) -> an aarch64 cp311 wheel
  phase "building the aarch64 wheel ($CROSS_CC $("$CROSS_CC" -dumpfullversion))"
  mkdir -p "$WORK/src"
  git -C "$ROOT" ls-files -z | (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
  # Python.h from the arm64 headers first; their pyconfig.h picks aarch64-linux-gnu/python3.11/.
  CC="$CROSS_CC" LDSHARED="$CROSS_CC -shared" LDFLAGS="" \
    CFLAGS="-I$ARM64_ROOT/usr/include/python3.11 -I$ARM64_ROOT/usr/include" \
    SETUPTOOLS_EXT_SUFFIX=.cpython-311-aarch64-linux-gnu.so _PYTHON_HOST_PLATFORM=linux-aarch64 \
    "$PYTHON" -m pip wheel --no-deps -w "$WORK/dist" "$WORK/src" > "$WORK/build.log" 2>&1 || {
    cat "$WORK/build.log" >&2; echo "package_check: the wheel did not build" >&2; exit 2; }
  WHEEL=$(ls "$WORK"/dist/edge_ser-*.whl)
  echo "   $(basename "$WHEEL")"
  (cd "$WORK" && "$PYTHON" -m zipfile -l "$WHEEL" | awk '/\.so /{print "   " $1}')
}

install_wheel() {  # the wheel + numpy, onnxruntime, ai-edge-litert (aarch64 wheels from PyPI) -> $SITE
  phase "installing it with its aarch64 dependencies from PyPI"
  SITE=$WORK/site
  "$PYTHON" -m pip install -q --no-warn-conflicts --target "$SITE" --only-binary=:all: --python-version 3.11 --implementation cp \
    --abi cp311 "${PLATFORMS[@]/#/--platform=}" "$WHEEL[tflite]"
  (cd "$WORK" && ls "$SITE" | grep -E '^(edge_ser|numpy|onnxruntime|ai_edge_litert)-.*dist-info$' | sed 's/^/   /')
}

guest() {  # guest CPU ARGS...: the arm64 Python on an emulated core, with that core's /proc/cpuinfo
  local cpu=$1
  shift
  (cd "$WORK" && env LD_LIBRARY_PATH="$ARM64_ROOT/lib/aarch64-linux-gnu:$ARM64_ROOT/usr/lib/aarch64-linux-gnu" \
    PYTHONHOME="$ARM64_ROOT/usr" PYTHONPATH="$SITE" PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1 \
    QEMU_LD_PREFIX="$ARM64_ROOT/cpu-$cpu" qemu-aarch64 -cpu "$cpu" "$ARM64_ROOT/usr/bin/python3.11" "$@")
}

prepare_cpu() {  # onnxruntime reads /proc/cpuinfo; qemu-user would show it the x86 host's
  local cpu=$1
  mkdir -p "$ARM64_ROOT/cpu-$cpu/proc"
  ln -sfn ../lib "$ARM64_ROOT/cpu-$cpu/lib"
  ln -sfn ../usr "$ARM64_ROOT/cpu-$cpu/usr"
  guest "$cpu" "$HERE/onnxruntime_check.py" --cpuinfo > "$ARM64_ROOT/cpu-$cpu/proc/cpuinfo"
  guest "$cpu" -c "import edge_ser, platform, onnxruntime; print('   edge_ser from', edge_ser.__file__.replace('$WORK', '<tmp>'), 'on', platform.machine(), '| onnxruntime', onnxruntime.__version__)"
}

build_wheel
install_wheel
mapfile -t CLIPS < <(ls "$DATA"/emodb/wav/*.wav | awk -v n="$N_CLIPS" '{a[NR] = $0} END {s = int(NR / n); for (i = 0; i < n; i++) print a[1 + i * s]}')
echo "   ${#CLIPS[@]} EmoDB clips, one every $(( $(ls "$DATA"/emodb/wav/*.wav | wc -l) / N_CLIPS )) by name"

status=0
for model in $MODELS; do
  phase "x86-64 reference: infer --model $model"
  (cd "$ROOT" && env PYTHONPATH="$ROOT" "$PYTHON" -m edge_ser infer --model "$model" --format json "${CLIPS[@]}") \
    > "$WORK/x86_$model.json"
done
for cpu in $QEMU_CPUS; do
  prepare_cpu "$cpu"
  for model in $MODELS; do
    phase "qemu-aarch64 -cpu $cpu: infer --model $model"
    guest "$cpu" -m edge_ser infer --model "$model" --format json "${CLIPS[@]}" > "$WORK/${cpu}_$model.json" || status=1
    "$PYTHON" "$HERE/compare_runs.py" --tolerance "$TOLERANCE" "$WORK/x86_$model.json" "$WORK/${cpu}_$model.json" \
      | sed "s|$DATA/emodb/wav/||" || status=1
  done
done
phase "$([ $status = 0 ] && echo PASS || echo FAIL) (labels equal, scores within $TOLERANCE of x86-64)"
exit $status
