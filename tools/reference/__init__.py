"""PyTorch reference Flamingo built from the peers' own code (timm, open_flamingo, transformers).

    from reference import build_reference, to_checkpoint_layouts, write_layouts
(with tools/ on sys.path). See flamingo_ref.py and docs/converters.md.
"""
from .flamingo_ref import (FlamingoRef, build_reference, randomize_, to_checkpoint_layouts,  # noqa: F401
                           xattn_layers)
from .layouts import write_layouts  # noqa: F401
