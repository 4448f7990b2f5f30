#!/usr/bin/env bash
# The whole test suite: installs the Debian packages and the Python tools' venv (for the
# parity reference self-tests and the fixture drift check), builds Release and runs every test
# with CTest. Kernel and parity tests run both the AVX2 and the scalar path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/install_deps.sh
bash tools/setup_venv.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
ctest --test-dir build -j"$(nproc)" --output-on-failure --timeout 900
