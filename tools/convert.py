#!/usr/bin/env python3
"""Convert peer checkpoints into a flamingo model directory. See docs/converters.md.

Example:
    .venv/bin/python tools/convert.py --vision dm_nfnet_f0.safetensors \
        --openflamingo checkpoint.pt --llama llama-7b-hf/ --out models/my-model --dtype f16
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from convert.cli import main  # noqa: E402  (the package tools/convert/, not this file)

if __name__ == "__main__":
    sys.exit(main())
