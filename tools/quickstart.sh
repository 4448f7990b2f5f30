#!/usr/bin/env bash
# Installs what is needed, builds, and captions the bundled example images with the bundled
# demo model (models/demo). Without a demo model in the checkout it runs the CLI on the tiny
# random-weight parity model instead, so the command still proves the build end to end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAMINGO_BUILD_TESTS=OFF -DFLAMINGO_BUILD_BENCH=OFF
cmake --build build -j"$(nproc)" --target flamingo-caption
cli=build/tools/caption/flamingo-caption
if [ -f models/demo/config.json ]; then
  model=models/demo
  images=(models/demo/examples/*)
else
  echo "quickstart: no models/demo yet; captioning with the random-weight parity model" >&2
  model=tests/data/parity/openflamingo
  images=(tests/data/parity/openflamingo/images/*.png)
fi
for img in "${images[@]}"; do
  printf '%s: ' "$(basename "$img")"
  "$cli" -m "$model" "$img"
done
