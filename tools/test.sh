#!/usr/bin/env bash
# The whole test suite: installs the Debian packages and the Python tools' venv (for the
# parity reference self-tests and the fixture drift check), builds Release and runs every test
# with CTest. Kernel and parity tests run both the AVX2 and the scalar path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/install_deps.sh
bash tools/setup_venv.sh
# The options are spelled out because the build directory may already exist with others cached:
# tools/quickstart.sh configures it without tests, and a plain reconfigure would keep that and
# run no test at all (--no-tests=error makes that a failure too).
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAMINGO_BUILD_TESTS=ON \
  -DFLAMINGO_BUILD_TOOLS=ON -DFLAMINGO_BUILD_BENCH=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build -j"$(nproc)" --output-on-failure --timeout 900 --no-tests=error
