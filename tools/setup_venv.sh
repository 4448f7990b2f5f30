#!/usr/bin/env bash
# Creates (or completes) the Python environment for tools/: .venv at the repository root,
# made by Debian's /usr/bin/python3 with --system-site-packages so that python3-torch 1.13,
# python3-torchvision, numpy, Pillow, sentencepiece and tqdm come from Debian, plus the pinned
# PyPI packages of tools/requirements.txt. Idempotent: an existing .venv is reused and pip
# skips what is already installed. Downloads no model weights.
# Usage: bash tools/setup_venv.sh        then  .venv/bin/python tools/convert.py ...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="$root/.venv"
req="$here/requirements.txt"

if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
py="$venv/bin/python"
# Guard: the whole point is Debian's torch; a PyPI torch would be a multi-GB download.
"$py" -c "import torch, numpy, PIL, sentencepiece, tqdm, torchvision" || {
  echo "setup_venv: Debian python3-torch/-torchvision/-numpy/-pil/-sentencepiece/-tqdm missing;" \
       "run: bash tools/install_deps.sh" >&2
  exit 1
}

with_deps=()
no_deps=()
while IFS= read -r line; do
  spec="$(printf '%s' "$line" | sed -e 's/#.*//' -e 's/[[:space:]]//g')"
  [ -z "$spec" ] && continue
  if printf '%s' "$line" | grep -q '#[[:space:]]*no-deps'; then
    no_deps+=("$spec")
  else
    with_deps+=("$spec")
  fi
done < "$req"

pip_flags=(--disable-pip-version-check --no-input -q)
"$py" -m pip install "${pip_flags[@]}" "${with_deps[@]}"
"$py" -m pip install "${pip_flags[@]}" --no-deps "${no_deps[@]}"

"$py" - <<'PY'
import torch, timm, einops, einops_exts, safetensors, transformers
assert torch.__version__.startswith("1.13"), f"unexpected torch {torch.__version__}: a PyPI torch slipped in"
print(f"setup_venv: ok (torch {torch.__version__}, timm {timm.__version__}, "
      f"transformers {transformers.__version__}, safetensors {safetensors.__version__})")
PY
