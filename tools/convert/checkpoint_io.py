"""Reading source checkpoints and writing the model directory's safetensors file."""

import glob
import os

import torch


class ConvertError(Exception):
    """A source checkpoint the converter refuses; the message says which file/tensor/field."""


def _strip_prefixes(sd):
    # DDP / FSDP wrappers prefix every key with "module."; keys are otherwise unchanged.
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_state_dict(path):
    """A flat {name: tensor} dict from .safetensors, .pt/.pth/.bin (optionally nested under
    'state_dict' / 'model_state_dict' / 'model')."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - report any unpickling failure with the file name
        raise ConvertError(f"{path}: cannot read as a PyTorch checkpoint ({e})") from e
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConvertError(f"{path}: expected a flat dict of tensors (a state dict)")
    return _strip_prefixes(dict(obj))


def load_hf_weights(directory):
    """All tensors of a HF model directory (*.safetensors, else pytorch_model*.bin)."""
    files = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
    if not files:
        files = sorted(glob.glob(os.path.join(directory, "pytorch_model*.bin")))
    if not files:
        raise ConvertError(f"{directory}: no *.safetensors or pytorch_model*.bin weights")
    out = {}
    for f in files:
        for k, v in load_state_dict(f).items():
            if k in out:
                raise ConvertError(f"{f}: tensor {k} also appears in another shard")
            out[k] = v
    return out


def require(sd, name, shape, where):
    """sd[name] with exactly `shape` (None entries match anything)."""
    if name not in sd:
        raise ConvertError(f"{where}: missing tensor {name}")
    t = sd[name]
    if len(t.shape) != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ConvertError(f"{where}: tensor {name} has shape {list(t.shape)}, expected {want}")
    return t


DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
ALL_DTYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")


def storage_tensors(name, t, dtype, tied_embeddings=False, head_q8_in_q4=True):
    """{stored name: tensor} for tensor `name` in a model of `dtype`: one tensor, or for a
    quantised matrix `X.weight` (I8 or U8 codes) + `X.weight_scale` (F16 block scales).
    Which tensor gets which type: tools/convert/quantize.py (storage_type)."""
    import numpy as np

    from . import quantize

    if isinstance(t, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(t))
    t = t.detach().to("cpu")
    if not t.is_floating_point():
        raise ConvertError(f"tensor {name} is {t.dtype}, expected a floating-point tensor")
    kind = quantize.storage_type(name, list(t.shape), dtype, tied_embeddings, head_q8_in_q4)
    if kind not in quantize.QTYPES:
        return {name: t.to(DTYPES[kind]).contiguous()}
    rows = t.float().reshape(t.shape[0], -1).numpy()
    try:
        q, scales = quantize.quantize(kind, rows, name)
    except quantize.QuantizeError as e:
        raise ConvertError(str(e)) from e
    return {name: torch.from_numpy(q), name + "_scale": torch.from_numpy(scales.view(np.float16))}


def write_safetensors(tensors, path, dtype, metadata=None, progress=True, tied_embeddings=False,
                      head_q8_in_q4=True):
    """Writes with the safetensors library: the header is padded to 8 bytes and tensors are
    ordered by decreasing element size, so every tensor starts aligned to its element size.
    Quantised dtypes need the vision convolutions already folded (quantize.fold_vision_convs)."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    if dtype not in ALL_DTYPES:
        raise ConvertError(f"unknown dtype {dtype!r}; expected one of {ALL_DTYPES}")
    if dtype in ("q8_0", "q4_0") and any(n.startswith("vision.") and n.endswith(".gain") for n in tensors):
        raise ConvertError("quantised models store the vision convolutions standardised: fold them first")
    out = {}
    for name in tqdm(sorted(tensors), desc=f"writing {dtype}", disable=not progress, unit="t"):
        for k, v in storage_tensors(name, tensors[name], dtype, tied_embeddings, head_q8_in_q4).items():
            if k in out or (k != name and k in tensors):
                raise ConvertError(f"tensor {k} produced twice")
            out[k] = v
    save_file(out, path, metadata=metadata or {"format": "pt"})
