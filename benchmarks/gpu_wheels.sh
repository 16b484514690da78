#!/usr/bin/env bash
# Downloads into .whl/ (ignored) the wheels that a lent GPU machine (nvidia-h100-x1 / nvidia-h200) lacks for
# benchmarks/gpu_check.py. That machine has no network; its image holds torch, transformers, accelerate, peft,
# huggingface-hub, safetensors, Pillow, numpy, tqdm, regex, requests, filelock (the device README's package list),
# but not diffusers or pydantic and its parts. The versions are the ones this project's venv runs and tests with;
# --no-deps fetches each alone, so every needed wheel is named here. Flags: exactly the device README's.
#   bash benchmarks/gpu_wheels.sh            then see docs/PERFORMANCE.md, "GPU check", for the device command.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
  diffusers==0.42.1
  pydantic==2.14.4
  pydantic-core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0   # pydantic-core needs a recent one; the machine's own may be older
)
rm -rf .whl
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
ls -l .whl
du -sh .whl
