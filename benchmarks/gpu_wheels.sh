#!/usr/bin/env bash
# Downloads into .whl/ (ignored) the wheels that a lent GPU machine (nvidia-h100-x1 / nvidia-h200) lacks for
# benchmarks/gpu_check.py. That machine has no network; its image holds torch, transformers, accelerate, peft,
# huggingface-hub, safetensors, Pillow, numpy, tqdm, regex, requests, filelock (the device README's package list),
# but not diffusers or pydantic and its parts. --no-deps fetches each alone, so every needed wheel is named here.
# Flags: exactly the device README's.
#   bash benchmarks/gpu_wheels.sh            then see docs/PERFORMANCE.md, "GPU check", for the device command.
set -euo pipefail
cd "$(dirname "$0")/.."
# The versions are read from the Python that runs this script (the project's venv), so they cannot drift from
# what the tests run: hard pins did drift once (typing-inspection 0.4.2 against pydantic 2.14.4 broke its import
# on the device, 2026-11-27).
# The venv's Python by default (PYTHON=... for another); a lookup that fails stops here, before .whl/ is touched.
PYTHON="${PYTHON:-.venv/bin/python}"
pins=$("$PYTHON" - <<'PY'
from importlib.metadata import version
for name in ("diffusers", "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions"):
    print(f"{name}=={version(name)}")
PY
)
mapfile -t WHEELS <<<"$pins"
if [ "${#WHEELS[@]}" -ne 6 ]; then
    echo "gpu_wheels.sh: expected 6 versions from $PYTHON, got: ${WHEELS[*]}" >&2
    exit 2
fi
echo "${WHEELS[@]}"
rm -rf .whl
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
ls -l .whl
du -sh .whl
