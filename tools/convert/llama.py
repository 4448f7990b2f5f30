"""HF LLaMA directory (+ the embedding rows a Flamingo checkpoint adds) → `lm.*` tensors, the
config's lm and tokens sections, and the tokenizer.

Everything about the LM comes from config.json and the tensor shapes. Special-token ids come
from added_tokens.json when the directory has one, else they are assigned as OpenFlamingo's
factory does: `<|endofchunk|>`, `<image>` and (when the tokenizer has no pad) `<PAD>` appended
after the sentencepiece vocabulary, in that order.
"""

import json
import os

import torch

from .checkpoint_io import ConvertError, load_hf_weights, require

OPENFLAMINGO_ADDED = ("<|endofchunk|>", "<image>", "<PAD>")


def read_hf_config(directory):
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise ConvertError(f"{directory}: no config.json (expected a HF LLaMA directory)")
    with open(path) as f:
        c = json.load(f)
    mt = c.get("model_type", "llama")
    if mt != "llama":
        raise ConvertError(f"{path}: model_type {mt!r}; only LLaMA LMs are supported")
    if c.get("rope_scaling"):
        raise ConvertError(f"{path}: rope_scaling {c['rope_scaling']} is not supported")
    if c.get("attention_bias") or c.get("mlp_bias"):
        raise ConvertError(f"{path}: attention/MLP biases are not part of the LLaMA layout")
    if c.get("hidden_act", "silu") != "silu":
        raise ConvertError(f"{path}: hidden_act {c.get('hidden_act')!r}; LLaMA uses silu")
    return c


def special_tokens(directory, vocab_rows, image_token="<image>", eoc_token="<|endofchunk|>"):
    """Returns (tokens config section, sentencepiece base vocabulary size)."""
    import sentencepiece as spm

    sp_path = os.path.join(directory, "tokenizer.model")
    if not os.path.isfile(sp_path):
        raise ConvertError(f"{directory}: no tokenizer.model (sentencepiece) file")
    sp = spm.SentencePieceProcessor(model_file=sp_path)
    base = sp.get_piece_size()
    added_path = os.path.join(directory, "added_tokens.json")
    if os.path.isfile(added_path):
        with open(added_path) as f:
            added = {str(k): int(v) for k, v in json.load(f).items()}
        source = "added_tokens.json"
    else:
        names = list(OPENFLAMINGO_ADDED[:2]) + ([OPENFLAMINGO_ADDED[2]] if sp.pad_id() < 0 else [])
        added = {name: base + i for i, name in enumerate(names)}
        source = "OpenFlamingo assignment (appended after the sentencepiece vocabulary)"
    for name, i in added.items():
        if not 0 <= i < vocab_rows:
            raise ConvertError(f"token {name!r} has id {i} ({source}) but the embedding table has "
                               f"{vocab_rows} rows; the checkpoint lacks the added-token embeddings")
        if i < base and sp.id_to_piece(i) != name:
            raise ConvertError(f"token {name!r} id {i} ({source}) collides with sentencepiece piece "
                               f"{sp.id_to_piece(i)!r}")
    if image_token not in added:
        raise ConvertError(f"no id for the image token {image_token!r} ({source}: {sorted(added)})")
    bos, eos = sp.bos_id(), sp.eos_id()
    if bos < 0 or eos < 0:
        raise ConvertError(f"{sp_path}: sentencepiece model without BOS/EOS ids")
    eoc = added.get(eoc_token, eos)
    pad = added.get("<PAD>", sp.pad_id() if sp.pad_id() >= 0 else -1)
    # HF's LlamaTokenizer also splits its own special tokens (<unk>, <s>, </s>) out of the text.
    special = {sp.id_to_piece(i): i for i in (sp.unk_id(), bos, eos) if i >= 0}
    special.update(added)
    tokens = {"bos": bos, "eos": eos, "pad": pad, "image": added[image_token], "endofchunk": eoc,
              "add_bos": True, "special": dict(sorted(special.items(), key=lambda kv: kv[1]))}
    return tokens, base, sp_path, source


def convert_llama(directory, where_of=None, of_embed=None, of_head=None, extra_head_rows="mean"):
    """Returns (tensors named lm.*, lm config section, vocab rows).

    of_embed / of_head: the embedding / head tables of a Flamingo checkpoint (with the added
    token rows), which replace the HF ones; when only the embeddings grew, the head gets the
    missing rows as `extra_head_rows` says ('mean' of the existing rows, as HF's resize does
    since 4.46, or 'zero')."""
    c = read_hf_config(directory)
    sd = load_hf_weights(directory)
    sd = {k: v for k, v in sd.items() if not k.endswith("rotary_emb.inv_freq")}
    where = directory
    d, n_layers = c["hidden_size"], c["num_hidden_layers"]
    heads = c["num_attention_heads"]
    kv_heads = c.get("num_key_value_heads") or heads
    hd = c.get("head_dim") or d // heads
    ffn = c["intermediate_size"]
    tie = bool(c.get("tie_word_embeddings", False))
    if heads % kv_heads:
        raise ConvertError(f"{where}/config.json: num_attention_heads {heads} not divisible by "
                           f"num_key_value_heads {kv_heads}")
    out = {}
    emb = require(sd, "model.embed_tokens.weight", [None, d], where)
    if of_embed is not None:
        if of_embed.dim() != 2 or of_embed.shape[1] != d or of_embed.shape[0] < emb.shape[0]:
            raise ConvertError(f"{where_of}: embedding table {list(of_embed.shape)} does not extend "
                               f"the LM's {list(emb.shape)}")
        if not torch.allclose(of_embed[: emb.shape[0]].float(), emb.float(), rtol=0, atol=1e-2):
            print(f"note: {where_of}: the Flamingo checkpoint's embeddings differ from the HF LM's "
                  "base rows (trained embeddings); using the checkpoint's")
        emb = of_embed
    vocab = int(emb.shape[0])
    out["lm.embed_tokens.weight"] = emb
    for i in range(n_layers):
        s, o = f"model.layers.{i}.", f"lm.layers.{i}."
        for name, shape in (("self_attn.q_proj.weight", [heads * hd, d]),
                            ("self_attn.k_proj.weight", [kv_heads * hd, d]),
                            ("self_attn.v_proj.weight", [kv_heads * hd, d]),
                            ("self_attn.o_proj.weight", [d, heads * hd]),
                            ("mlp.gate_proj.weight", [ffn, d]),
                            ("mlp.up_proj.weight", [ffn, d]),
                            ("mlp.down_proj.weight", [d, ffn]),
                            ("input_layernorm.weight", [d]),
                            ("post_attention_layernorm.weight", [d])):
            out[o + name] = require(sd, s + name, shape, where)
    out["lm.norm.weight"] = require(sd, "model.norm.weight", [d], where)
    if not tie:
        if of_head is not None:
            head = of_head
            if head.shape != emb.shape:
                raise ConvertError(f"{where_of}: lm_head {list(head.shape)} does not match the "
                                   f"embeddings {list(emb.shape)}")
        else:
            head = require(sd, "lm_head.weight", [None, d], where)
            if head.shape[0] < vocab:
                extra = vocab - head.shape[0]
                fill = head.float().mean(0, keepdim=True) if extra_head_rows == "mean" else torch.zeros(1, d)
                print(f"note: lm_head has {head.shape[0]} rows, the vocabulary {vocab}: adding {extra} "
                      f"rows ({extra_head_rows}); those tokens' logits are then not trained values")
                head = torch.cat([head, fill.to(head.dtype).expand(extra, d)], 0)
            elif head.shape[0] != vocab:
                raise ConvertError(f"{where}: lm_head has {head.shape[0]} rows, embeddings {vocab}")
        out["lm.lm_head.weight"] = head
    known = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    known |= {f"model.layers.{i}.{n}" for i in range(n_layers) for n in (
        "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
        "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight")}
    extra = sorted(set(sd) - known)
    if extra:
        raise ConvertError(f"{where}: unexpected tensors {extra[:6]} (more LM layers than config.json says?)")
    cfg = {"type": "llama", "dim": d, "layers": n_layers, "heads": heads, "kv_heads": kv_heads,
           "head_dim": hd, "ffn_dim": ffn, "vocab_size": vocab,
           "max_seq_len": int(c.get("max_position_embeddings", 2048)),
           "rope_theta": float(c.get("rope_theta", 10000.0)), "rope_style": "rotate_half",
           "rms_norm_eps": float(c.get("rms_norm_eps", 1e-6)), "tie_embeddings": tie}
    return out, cfg, vocab
