#!/usr/bin/env bash
# Install the edge-ser runtime on a Raspberry Pi (Raspberry Pi OS bookworm 64-bit, Python 3.11)
# or a Jetson (JetPack 6, Python 3.10), from this repository, and optionally the systemd service
# that writes one JSON line per window from the default microphone (deploy/systemd/).
#
#   sudo deploy/install.sh [--dry-run] [--board pi|jetson] [--prefix DIR] [--no-tflite] [--no-service]
#                          [--ort-index URL]
#
#   --dry-run      print every command instead of running it (needs no root, changes nothing)
#   --board        pi or jetson (default: jetson when /etc/nv_tegra_release exists, else pi)
#   --prefix       where the venv goes (default /opt/edge-ser); the service runs DIR/venv/bin/edge-ser
#   --no-tflite    leave out ai-edge-litert (the packaged `tiny` model is TFLite and needs it)
#   --no-service   install the runtime only: no user, unit, log directory or logrotate config
#   --ort-index    Jetson: the package index of NVIDIA's onnxruntime-gpu builds for JetPack 6
#                  (default JETSON_ORT_INDEX below; PyPI's aarch64 onnxruntime has no CUDA)
#
# What it installs: Debian's compiler and Python headers (the C feature extractor is compiled on
# the board), alsa-utils (arecord, for the service), a venv with edge-ser and its runtime
# dependencies only (numpy, onnxruntime or onnxruntime-gpu, ai-edge-litert), then `edge-ser info`.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/edge-ser
JETSON_ORT_INDEX=https://pypi.jetson-ai-lab.io/jp6/cu126
ORT_INDEX=$JETSON_ORT_INDEX
BOARD=
DRY_RUN=0
TFLITE=1
SERVICE=1
APT_PACKAGES=(python3-venv python3-dev build-essential alsa-utils)
LOG_DIR=/var/log/edge-ser
SERVICE_USER=edge-ser

usage() { sed -n '6,16p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --board) [ $# -ge 2 ] || die "--board needs pi or jetson"; BOARD=$2; shift ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift ;;
    --ort-index) [ $# -ge 2 ] || die "--ort-index needs a URL"; ORT_INDEX=$2; shift ;;
    --no-tflite) TFLITE=0 ;;
    --no-service) SERVICE=0 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done
[ -n "$BOARD" ] || { [ -e /etc/nv_tegra_release ] && BOARD=jetson || BOARD=pi; }
case $BOARD in pi|jetson) ;; *) die "--board must be pi or jetson, got: $BOARD" ;; esac
case $PREFIX in /*) ;; *) die "--prefix must be an absolute path, got: $PREFIX" ;; esac
VENV=$PREFIX/venv

run() {  # print the command; run it unless --dry-run
  echo "+ $*"
  [ "$DRY_RUN" = 1 ] || "$@"
}

install_file() {  # install_file SRC DST: copy with /opt/edge-ser replaced by the prefix
  echo "+ install $1 -> $2 (prefix $PREFIX)"
  [ "$DRY_RUN" = 1 ] || sed "s|/opt/edge-ser|$PREFIX|g" "$1" | install -m 0644 /dev/stdin "$2"
}

check_system() {
  [ "$DRY_RUN" = 1 ] || [ "$(id -u)" = 0 ] || die "run as root (sudo), or with --dry-run"
  local machine
  machine=$(uname -m)
  [ "$machine" = aarch64 ] || echo "install.sh: note: this machine is $machine, not aarch64" >&2
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "edge-ser needs Python >= 3.10"
}

install_runtime() {
  local extra=
  if [ "$TFLITE" = 1 ]; then extra="[tflite]"; fi
  run apt-get install -y "${APT_PACKAGES[@]}"
  run python3 -m venv "$VENV"
  run "$VENV/bin/python" -m pip install --upgrade pip
  if [ "$BOARD" = jetson ]; then
    # NVIDIA's build with the CUDA and TensorRT providers; it and PyPI's onnxruntime both install
    # the `onnxruntime` module, so edge-ser goes in without its dependencies, numpy beside it.
    run "$VENV/bin/python" -m pip install --extra-index-url "$ORT_INDEX" onnxruntime-gpu numpy
    if [ "$TFLITE" = 1 ]; then run "$VENV/bin/python" -m pip install ai-edge-litert; fi
    run "$VENV/bin/python" -m pip install --no-deps "$REPO"
  else
    run "$VENV/bin/python" -m pip install "$REPO$extra"
  fi
  run "$VENV/bin/edge-ser" info
}

install_service() {
  id "$SERVICE_USER" >/dev/null 2>&1 || run useradd --system --no-create-home --shell /usr/sbin/nologin \
    --groups audio "$SERVICE_USER"
  run install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0755 "$LOG_DIR"
  install_file "$REPO/deploy/systemd/edge-ser.service" /etc/systemd/system/edge-ser.service
  install_file "$REPO/deploy/systemd/edge-ser.logrotate" /etc/logrotate.d/edge-ser
  run systemctl daemon-reload
  run systemctl enable --now edge-ser.service
}

echo "== edge-ser install: board $BOARD, venv $VENV, tflite $([ $TFLITE = 1 ] && echo yes || echo no)," \
     "service $([ $SERVICE = 1 ] && echo yes || echo no)$([ $DRY_RUN = 1 ] && echo ', dry run: nothing is changed')"
check_system
install_runtime
if [ "$SERVICE" = 1 ]; then install_service; fi
echo "== done. Check the board: $VENV/bin/edge-ser check --model default SPEECH_FILES_OR_DIR"
