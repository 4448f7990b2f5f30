#!/usr/bin/env bash
# Installs what is needed, builds the CLI, and captions the bundled example images with the
# bundled demo model (models/demo, which the CLI finds without flags).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAMINGO_BUILD_TESTS=OFF -DFLAMINGO_BUILD_BENCH=OFF
cmake --build build -j"$(nproc)" --target flamingo-caption
if [ ! -f models/demo/config.json ]; then
  echo "quickstart: models/demo is missing from this checkout (see docs/demo-model.md)" >&2
  exit 1
fi
shopt -s nullglob
for img in models/demo/examples/*.png models/demo/examples/*.jpg; do
  printf '%s: ' "$(basename "$img")"
  build/tools/caption/flamingo-caption "$img"
done
