#!/usr/bin/env bash
# Set up everything mmdiffkd needs on a fresh machine, idempotently.
#
#   bash tools/setup.sh            # CPU machine: venv in .venv, mmcv with CPU ops
#   MMDIFFKD_CUDA=1 bash tools/setup.sh   # force mmcv's CUDA ops (auto when torch sees a GPU)
#
# What it does (each step is skipped when already done):
#   1. Debian's dataset-fashion-mnist (real data for the demo and the tests);
#   2. a virtual environment in .venv (or $MMDIFFKD_VENV) with torch 2.14.1 / torchvision 0.29.1;
#   3. mmcv 2.1.0 with compiled ops, built once from the PyPI source package (ninja, C++20 for
#      torch 2.14's headers) and kept as a wheel in $MMDIFFKD_CACHE (default ~/.cache/mmdiffkd):
#      later set-ups, in this or any other checkout, install that wheel in seconds;
#   4. mmengine, mmdet, mmsegmentation, mmpretrain and the runtime/test requirements;
#   5. mmdiffkd itself, editable.
# A stamp in the venv records the hash of the requirement files and of this script: when it
# matches, the script only checks that mmdiffkd imports, and returns in seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMDIFFKD_VENV:-$ROOT/.venv}
CACHE=${MMDIFFKD_CACHE:-$HOME/.cache/mmdiffkd}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
MMCV_VERSION=2.1.0
FMNIST_DIR=/usr/share/datasets/fashion-mnist
STAMP=$VENV/.mmdiffkd-setup

log() { printf '[setup] %s\n' "$*"; }
# pip, without the noise of this machine's local mirrors ("Location ... is ignored").
pipq() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v 'is ignored: it is neither' >&2); }

stamp_value() {
    cat "$ROOT"/requirements/*.txt "$ROOT/tools/setup.sh" "$ROOT/setup.py" | sha256sum | cut -c1-16
}

# 1. Debian data ----------------------------------------------------------------------------
if [ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then
    log "installing Debian's dataset-fashion-mnist"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

# Fast path: everything done before with the same requirements (strict: a version mismatch, which
# `import mmdiffkd` otherwise only warns about, fails the check).
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_value)" ] \
        && MMDIFFKD_STRICT_ENV=1 "$VENV/bin/python" -c 'import mmdiffkd, mmcv.ops' 2>/dev/null; then
    log "environment up to date ($VENV)"
    exit 0
fi

# 2. venv + torch -----------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
log "installing torch, torchvision and the build tools"
pipq install -q -r "$ROOT/requirements/build.txt"

# 3. mmcv with ops ----------------------------------------------------------------------------
read -r TORCH_TAG USE_CUDA < <("$VENV/bin/python" - <<'EOF'
import os, torch
cuda = os.environ.get('MMDIFFKD_CUDA', '1' if torch.cuda.is_available() else '0') == '1'
tag = f"torch{torch.__version__.split('+')[0]}-" + (f"cu{torch.version.cuda}" if cuda else 'cpu')
print(tag, int(cuda))
EOF
)
WHEEL_DIR=$CACHE/wheels/$TORCH_TAG
wheel=$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
    log "building mmcv $MMCV_VERSION with ops for $TORCH_TAG (20-40 min on 2 cores, once per machine)"
    build=$(mktemp -d)
    pipq download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$build"
    tar -xzf "$build/mmcv-$MMCV_VERSION.tar.gz" -C "$build"
    # torch 2.14's headers need C++20; mmcv 2.1.0 hard-codes -std=c++17 (cxx and nvcc).
    sed -i 's/c++17/c++20/g' "$build/mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$WHEEL_DIR"
    (
        cd "$build/mmcv-$MMCV_VERSION"
        export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
        if [ "$USE_CUDA" = 1 ]; then export FORCE_CUDA=1; else unset FORCE_CUDA; fi
        "$VENV/bin/python" -m pip wheel --no-build-isolation --no-deps -w "$build/dist" . \
            > "$build/build.log" 2>&1 || { tail -n 60 "$build/build.log"; exit 1; }
    )
    mv "$build"/dist/mmcv-*.whl "$WHEEL_DIR/"
    rm -rf "$build"
    wheel=$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl | head -n 1)
else
    log "reusing cached mmcv wheel $wheel"
fi
pipq install -q "$wheel"

# 4-5. OpenMMLab packages, requirements, mmdiffkd ---------------------------------------------
log "installing mmengine, mmdet, mmsegmentation, mmpretrain and requirements"
mkdir -p "$CACHE"
grep -v '^mmcv' "$ROOT/requirements/mminstall.txt" > "$CACHE/mminstall-nommcv.txt"
pipq install -q -r "$CACHE/mminstall-nommcv.txt" -r "$ROOT/requirements/runtime.txt" \
    -r "$ROOT/requirements/tests.txt" "numpy<2" "setuptools<81"
pipq install -q --no-deps --no-build-isolation -e "$ROOT"

MMDIFFKD_STRICT_ENV=1 "$VENV/bin/python" - <<'EOF'
import mmcv, mmcv.ops, mmengine, mmdet, mmseg, mmpretrain, torch
import mmdiffkd
print(f'[setup] ok: torch {torch.__version__}, mmcv {mmcv.__version__} (ops), '
      f'mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, '
      f'mmpretrain {mmpretrain.__version__}, mmdiffkd {mmdiffkd.__version__}')
EOF
stamp_value > "$STAMP"
