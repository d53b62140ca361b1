#!/usr/bin/env bash
# The C feature extractor and VAD (edge_ser/_native) cross-compiled for aarch64 and run under
# qemu-aarch64 against the numpy reference and the host's own results; the x86-64 builds (the
# generic SSE2 kernel, and AVX2 where the CPU has it) run beside it for comparison.
# Emulated, not a Raspberry Pi: qemu timings mean nothing, and onnxruntime is not checked.
#
#   deploy/aarch64/check.sh            (PYTHON: an interpreter with edge_ser's requirements,
#                                        its C extensions built in place; default python3)
# Needs (installs nothing): gcc, gcc-aarch64-linux-gnu (with libc6-dev-arm64-cross and
# binutils-aarch64-linux-gnu), qemu-user; the EmoDB corpus at EDGE_SER_DATA.
# AARCH64_CC picks another cross compiler, QEMU_CPUS the emulated cores.
# Exit status 0 when every build passes. WORK=DIR keeps the build, inputs and outputs there
# (outside the repository: the inputs hold EmoDB audio); otherwise a temporary directory is used.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NATIVE=$ROOT/edge_ser/_native
SOURCES=(fft mel mel_generic mel_avx2 vad)  # edge_ser._features and _vad, less the CPython modules
PYTHON=${PYTHON:-python3}
SYSROOT=/usr/aarch64-linux-gnu
QEMU_CPUS=${QEMU_CPUS:-cortex-a53 cortex-a72 cortex-a76}  # Pi 3 / Zero 2, Pi 4, Pi 5 (Orin: A78AE)
AARCH64_CC=${AARCH64_CC:-aarch64-linux-gnu-gcc}  # aarch64-linux-gnu-gcc-11: JetPack 6's gcc version

need() {  # need COMMAND PACKAGE
  command -v "$1" >/dev/null || { echo "check: $1 not found: apt-get install $2" >&2; exit 2; }
}
need gcc gcc
need "$AARCH64_CC" "gcc-aarch64-linux-gnu libc6-dev-arm64-cross (or the versioned gcc-N-aarch64-linux-gnu)"
need aarch64-linux-gnu-objdump binutils-aarch64-linux-gnu
need qemu-aarch64 qemu-user
[ -d "$SYSROOT/lib" ] || { echo "check: $SYSROOT not found: apt-get install libc6-dev-arm64-cross" >&2; exit 2; }

if [ -n "${WORK:-}" ]; then
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi

# The compile flags `setup.py build_ext` uses: Python's own CFLAGS and CCSHARED, then setup.py's
# CFLAGS (read from setup.py, so the two cannot drift apart).
FLAGS=$(cd "$ROOT" && "$PYTHON" - <<'EOF'
import ast, sysconfig
tree = ast.parse(open("setup.py").read())
node = next(n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "CFLAGS")
flags = ast.literal_eval(node.orelse if isinstance(node, ast.IfExp) else node)
print(" ".join(filter(None, [sysconfig.get_config_var("CFLAGS"), sysconfig.get_config_var("CCSHARED"), *flags])))
EOF
)
echo "== flags: $FLAGS"

build() {  # build CC DIR: the extractor, the VAD and harness.c -> DIR/harness
  local cc=$1 dir=$2
  mkdir -p "$dir"
  echo "== $($cc --version | head -1)"
  for name in "${SOURCES[@]}"; do
    # shellcheck disable=SC2086  # FLAGS is a list of words
    "$cc" $FLAGS -I"$NATIVE" -c "$NATIVE/$name.c" -o "$dir/$name.o"
  done
  # shellcheck disable=SC2086
  "$cc" $FLAGS -I"$NATIVE" -c "$HERE/harness.c" -o "$dir/harness.o"
  "$cc" "$dir"/*.o -lm -o "$dir/harness"
}

echo "== inputs and host references"
(cd "$ROOT" && PYTHONPATH=$ROOT "$PYTHON" "$HERE/make_cases.py" "$WORK/cases") || {
  echo "check: make_cases.py failed (are the C extensions built? python setup.py build_ext --inplace)" >&2
  exit 2
}

build gcc "$WORK/x86-64"
build "$AARCH64_CC" "$WORK/aarch64"

# Which vector instructions the generic kernel compiled to: double-precision NEON arithmetic on
# aarch64 (v registers, .2d arrangement), packed SSE2 on x86-64.
count() {  # count OBJDUMP OBJECT REGEX: instructions matching REGEX in the disassembly
  "$1" -d --no-show-raw-insn "$2" | grep -cE "$3" || true
}
NEON_OPS='\s(fadd|fsub|fmul|fdiv|fmla|fmls|fneg|fcvtl|fcvtn)\s+v[0-9]+\.2d'
NEON=$(count aarch64-linux-gnu-objdump "$WORK/aarch64/mel_generic.o" "$NEON_OPS")
FMA=$(count aarch64-linux-gnu-objdump "$WORK/aarch64/mel_generic.o" '\s(fmla|fmls)\s+v[0-9]+\.2d')
SSE2=$(count objdump "$WORK/x86-64/mel_generic.o" '\s(addpd|subpd|mulpd|divpd|cvtps2pd|cvtpd2ps)\s')
echo "== generic kernel (mel_generic.o): aarch64 $NEON NEON .2d double arithmetic instructions" \
  "($FMA fused multiply-add); x86-64 $SSE2 packed SSE2 double instructions"

status=0
run() {  # run LABEL COMMAND...: one build's table; a failure is remembered, not fatal
  echo "== $1"
  shift
  "$@" || status=1
}
mkdir -p "$WORK/out-x86-generic" "$WORK/out-x86-auto"
run "x86-64, generic kernel (SSE2)" "$WORK/x86-64/harness" "$WORK/cases" "$WORK/out-x86-generic" generic
run "x86-64, auto kernel; C-other: vs x86-64 generic" \
  "$WORK/x86-64/harness" "$WORK/cases" "$WORK/out-x86-auto" auto "$WORK/out-x86-generic"
for cpu in $QEMU_CPUS; do
  out=$WORK/out-aarch64-$cpu
  mkdir -p "$out"
  run "aarch64 under qemu-aarch64 -cpu $cpu; C-other: vs x86-64 generic" \
    qemu-aarch64 -cpu "$cpu" -L "$SYSROOT" "$WORK/aarch64/harness" "$WORK/cases" "$out" auto "$WORK/out-x86-generic"
done
[ "$NEON" -gt 0 ] || { echo "check: no NEON double-precision arithmetic in the aarch64 generic kernel" >&2; status=1; }

echo "== columns: max|C-ref| log-mel vs numpy reference; C-other: vs the build named in the title;"
echo "   VAD-own / VAD-host: frames whose VAD decision differs from the host's, on this build's"
echo "   log-mel / on the host's log-mel; max|dscore|: VAD score (dB) vs the host's, on the host's log-mel"
echo "== $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
