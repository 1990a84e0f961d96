#!/usr/bin/env bash
# Idempotent set-up: keeps an installed torch (else the CPU wheel torch==2.13.0), then installs
# this package in editable mode with its test extras. Re-running it is quick and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
PWD_REPO="$(pwd)"

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing torch==2.13.0 (CPU wheel)"
    "$PY" -m pip install --quiet "torch==2.13.0"
fi

# checked from another directory: from the repository root, `import tianshou_qmle` would find the
# checkout itself even when the installed (editable) package points at another one
if (cd / && REPO="$PWD_REPO" "$PY" - <<'CHECK' >/dev/null 2>&1
import os, pathlib, tianshou_qmle, tianshou, dm_control, shimmy, mujoco, pytest, h5py, tensorboard
import imageio_ffmpeg, wandb, build, twine, scipy, joblib, rliable, mkdocs, material, mkdocstrings, mkdocs_gen_files, ray
assert pathlib.Path(tianshou_qmle.__file__).resolve().parents[1] == pathlib.Path(os.environ["REPO"]).resolve()
assert int(mujoco.__version__.split(".")[0]) < 4
CHECK
)
then
    echo "[setup] tianshou-qmle and its dependencies are already installed"
else
    echo "[setup] installing tianshou-qmle (editable) and its dependencies"
    "$PY" -m pip install --quiet -e ".[test]"
fi
