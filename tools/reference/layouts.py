"""Writes a reference model as the peers' files, ready for tools/convert.py.

    paths = write_layouts(model, "work/", "tok/tokenizer.model", hf_vocab="base")
    subprocess.run([sys.executable, "tools/convert.py", *paths["convert_args"], "--out", "m/"])
"""

import json
import os
import shutil

import torch

from .flamingo_ref import resampler_kind, to_checkpoint_layouts, xattn_kind


def write_layouts(model, out_dir, tokenizer_model, hf_vocab="base", base_vocab=None):
    """hf_vocab: 'base' → the HF LLaMA dir holds only the sentencepiece rows and the added-token
    rows travel in the OpenFlamingo checkpoint (as OpenFlamingo ships them); 'full' → the HF dir
    holds every row and an added_tokens.json (needed when there is no OpenFlamingo checkpoint)."""
    cfg = model.config
    layouts = to_checkpoint_layouts(model)
    os.makedirs(out_dir, exist_ok=True)
    from safetensors.torch import save_file

    paths = {"vision": os.path.join(out_dir, "vision.safetensors")}
    save_file(layouts["timm"], paths["vision"])
    args = ["--vision", paths["vision"]]
    if layouts["openflamingo"]:
        paths["openflamingo"] = os.path.join(out_dir, "openflamingo.pt")
        torch.save(layouts["openflamingo"], paths["openflamingo"])
        args += ["--openflamingo", paths["openflamingo"]]
    elif hf_vocab == "base":
        raise ValueError("hf_vocab='base' needs an OpenFlamingo checkpoint to carry the added rows")
    if layouts["idefics"]:
        paths["idefics"] = os.path.join(out_dir, "idefics.safetensors")
        save_file(layouts["idefics"], paths["idefics"])
        args += ["--idefics", paths["idefics"]]

    hf_dir = os.path.join(out_dir, "llama")
    os.makedirs(hf_dir, exist_ok=True)
    hf_cfg, lm_sd = layouts["llama"]
    tok = cfg["tokens"]
    vocab = cfg["lm"]["vocab_size"]
    special = tok.get("special") or {}
    if hf_vocab == "base":
        if base_vocab is None:
            added = [i for n, i in special.items() if n not in ("<unk>", "<s>", "</s>")]
            base_vocab = min(added) if added else vocab
        lm_sd = dict(lm_sd)
        for k in ("model.embed_tokens.weight", "lm_head.weight"):
            if k in lm_sd:
                lm_sd[k] = lm_sd[k][:base_vocab].clone()
        hf_cfg = dict(hf_cfg, vocab_size=base_vocab)
    else:
        sp_size = base_vocab if base_vocab is not None else min(
            i for n, i in special.items() if n not in ("<unk>", "<s>", "</s>"))
        with open(os.path.join(hf_dir, "added_tokens.json"), "w") as f:
            json.dump({n: i for n, i in special.items() if i >= sp_size}, f, indent=2)
    keep = ("architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "max_position_embeddings", "rms_norm_eps",
            "rope_theta", "vocab_size", "tie_word_embeddings", "hidden_act", "bos_token_id",
            "eos_token_id", "pad_token_id", "attention_bias", "rope_scaling")
    hf_cfg = {k: hf_cfg.get(k) for k in keep}
    hf_cfg["architectures"] = ["LlamaForCausalLM"]
    hf_cfg["model_type"] = "llama"
    hf_cfg["torch_dtype"] = "float32"
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2)
    save_file(lm_sd, os.path.join(hf_dir, "model.safetensors"))
    shutil.copyfile(tokenizer_model, os.path.join(hf_dir, "tokenizer.model"))
    paths["llama"] = hf_dir
    args += ["--llama", hf_dir]

    v, r, x, pre = cfg["vision"], cfg["resampler"], cfg["xattn"], cfg.get("preprocess", {})
    args += ["--image-size", str(v["image_size"]), "--vision-tap", v.get("tap", "stage3"),
             "--vision-activation", v.get("activation", "gelu"),
             "--vision-alpha", repr(v.get("alpha", 0.2)),
             "--resampler-heads", str(r["heads"]), "--resampler-head-dim", str(r["head_dim"]),
             "--resampler-ff-activation", r.get("ff_activation", "gelu"),
             "--max-seq-len", str(cfg["lm"]["max_seq_len"])]
    if resampler_kind(cfg) == "idefics":
        pass  # head_dim is in the q/k norm shapes; the flags above agree with it
    if xattn_kind(cfg) == "openflamingo":
        args += ["--xattn-heads", str(x["heads"]), "--xattn-head-dim", str(x["head_dim"]),
                 "--xattn-ffn", x.get("ffn", "gelu")]
    else:
        args += ["--xattn-every", str(x["every"])]
        if not x.get("reset_at_eos", False):
            args.append("--no-reset-at-eos")
    if pre:
        args += ["--resize", pre.get("resize", "squash"), "--crop-pct", repr(pre.get("crop_pct", 1.0)),
                 "--mean", *map(repr, pre.get("mean", [])), "--std", *map(repr, pre.get("std", []))]
    if "prompt" in cfg:
        args += ["--caption-prompt", cfg["prompt"].get("caption", "<image>Output:")]
    if not tok.get("add_bos", True):
        args.append("--no-bos")
    paths["convert_args"] = args
    return paths
