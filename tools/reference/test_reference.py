#!/usr/bin/env python3
"""Self-checks of the Python reference, the converter and the committed parity fixtures.

    .venv/bin/python tools/reference/test_reference.py      # plain runner
    .venv/bin/python -m pytest tools/reference               # same tests under pytest
"""

import copy
import json
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.dirname(HERE)
ROOT = os.path.dirname(TOOLS)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from reference import build_reference, randomize_, write_layouts  # noqa: E402
from reference import peers  # noqa: E402
from reference.model_dir import load_model_dir  # noqa: E402

PARITY = os.path.join(ROOT, "tests", "data", "parity")
FIXTURES = ("openflamingo", "idefics", "paper", "video")


def _expected(name):
    from safetensors.torch import load_file

    return load_file(os.path.join(PARITY, name, "reference", "expected.safetensors"))


def _config(name):
    with open(os.path.join(PARITY, name, "config.json")) as f:
        return json.load(f)


def _pixels(e):
    return [e[f"pixels.{i}"] for i in range(sum(1 for k in e if k.startswith("pixels.")))]


def _model(name, seed=5):
    return randomize_(build_reference(_config(name)), seed)


def test_vision_tap_matches_timm_forward_features():
    """Our flattening of the tap equals timm's own forward_features on the same weights, and the
    stage-3 tap equals what timm feeds final_conv."""
    nfnet = peers.timm_nfnet()
    cfg = _config("paper")  # tap final_act, has a final conv
    model = _model("paper")
    x = torch.randn(2, 40, 40, 3, generator=torch.Generator().manual_seed(1))
    ours = model.encode_vision(x)
    timm_net = model.vision
    with torch.no_grad():
        ref = timm_net.forward_features(x.permute(0, 3, 1, 2).contiguous())
        captured = {}
        h = timm_net.final_conv.register_forward_hook(lambda m, i, o: captured.setdefault("in", i[0]))
        timm_net.forward_features(x.permute(0, 3, 1, 2).contiguous())
        h.remove()
    assert isinstance(timm_net, nfnet.NormFreeNet)
    assert torch.equal(ours, ref.flatten(2).transpose(1, 2))
    cfg3 = copy.deepcopy(cfg)
    cfg3["vision"]["tap"] = "stage3"
    cfg3["resampler"]["dim"] = cfg3["vision"]["widths"][3]
    m3 = build_reference(cfg3)
    m3.vision.load_state_dict(model.vision.state_dict())
    assert torch.equal(m3.encode_vision(x), captured["in"].flatten(2).transpose(1, 2))


def _assert_same_to_rounding(got, want, what):
    # PyTorch picks its conv and GEMM code by CPU (oneDNN/MKL use AVX-512 where the machine has
    # it), so the committed tensors, made on an AVX2 machine, are reproduced bitwise only there;
    # elsewhere the last bit or two differ. A converter mapping error changes far more than that.
    assert got.shape == want.shape, what
    scale = float(want.abs().max()) or 1.0
    err = float((got - want).abs().max())
    assert err <= 1e-5 * scale, (what, err, scale)


def test_fixtures_reload_to_rounding():
    """The converted directories reproduce every committed stage tensor (converter mapping)."""
    for name in FIXTURES:
        e = _expected(name)
        model = load_model_dir(os.path.join(PARITY, name))
        out = model(e["prompt_ids"], _pixels(e))
        for i, v in enumerate(out["vision"]):
            _assert_same_to_rounding(v, e[f"vision.{i}"], (name, "vision", i))
            _assert_same_to_rounding(out["resampler"][i], e[f"resampler.{i}"], (name, "resampler", i))
        assert len(out["xattn"]) == sum(1 for k in e if k.startswith("xattn."))
        for j, x in enumerate(out["xattn"]):
            _assert_same_to_rounding(x, e[f"xattn.{j}"], (name, "xattn", j))
        _assert_same_to_rounding(out["logits"], e["logits"], (name, "logits"))
        assert torch.equal(model.greedy(e["prompt_ids"], _pixels(e), 32), e["greedy_ids"]), name


def test_fixture_gates_and_skip_gains_are_nonzero():
    from safetensors.torch import load_file

    for name in FIXTURES:
        w = load_file(os.path.join(PARITY, name, "model.safetensors"))
        gates = [v for k, v in w.items() if k.endswith("_gate")]
        skips = [v for k, v in w.items() if k.endswith("skipinit_gain")]
        assert gates and all(float(g.abs().min()) > 0.1 for g in gates), name
        assert skips and all(float(s.abs().min()) > 0.1 for s in skips), name


def test_zero_gates_give_the_plain_lm():
    for name in ("openflamingo", "idefics"):
        e = _expected(name)
        model = _model(name)
        with torch.no_grad():
            for n, p in model.xattn.named_parameters():
                if n.split(".")[-1] in ("attn_gate", "ff_gate", "alpha_cross_attn", "alpha_dense"):
                    p.zero_()
        logits = model(e["prompt_ids"], _pixels(e))["logits"]
        with torch.no_grad():
            for hook_layer in model.block_layers:  # the plain LM: no hooks, same weights
                model.lm.model.layers[hook_layer]._forward_pre_hooks.clear()
            plain = model.lm(e["prompt_ids"].unsqueeze(0), use_cache=False).logits[0]
        assert torch.equal(logits, plain), name


def _t(ids, image_id):
    return torch.cumsum((ids == image_id).long(), 0)


def test_later_tokens_ignore_earlier_images():
    """Replacing image 0 changes block 0's output only for tokens whose latest image is 0
    (block 0 sees text-only hidden states, so this isolates the cross-attention mask)."""
    for name in ("openflamingo", "idefics"):
        cfg = _config(name)
        e = _expected(name)
        model = _model(name)
        ids, px = e["prompt_ids"], _pixels(e)
        a = model(ids, px)["xattn"][0]
        px2 = [px[0] + 1.0] + px[1:]
        b = model(ids, px2)["xattn"][0]
        t = _t(ids, cfg["tokens"]["image"])
        changed = (a - b).abs().amax(-1) > 0
        assert bool(changed[t == 1].any()), name
        assert not bool(changed[t != 1].any()), name


def test_text_before_first_image_has_no_cross_attention():
    for name in ("openflamingo", "idefics"):
        cfg = _config(name)
        e = _expected(name)
        model = _model(name)
        ids, px = e["prompt_ids"], _pixels(e)
        a = model(ids, px)["xattn"][0]
        with torch.no_grad():
            for n, p in model.xattn.named_parameters():
                if n.split(".")[-1] in ("attn_gate", "alpha_cross_attn"):
                    p.mul_(-3.0)
        b = model(ids, px)["xattn"][0]
        t = _t(ids, cfg["tokens"]["image"])
        same = (a - b).abs().amax(-1) == 0
        assert bool(same[t == 0].all()) and not bool(same[t > 0].all()), name


def test_idefics_reset_after_eos():
    cfg = _config("idefics")
    e = _expected("idefics")
    model = _model("idefics")
    ids, px = e["prompt_ids"], _pixels(e)
    eos, img = cfg["tokens"]["eos"], cfg["tokens"]["image"]
    a = model(ids, px)["xattn"][0]
    b = model(ids, [px[0] * 0.5 - 0.3] + px[1:])["xattn"][0]
    changed = (a - b).abs().amax(-1) > 0
    seen_img, after_eos = 0, False
    for s, tok in enumerate(ids.tolist()):
        if tok == img:
            seen_img, after_eos = seen_img + 1, False
        sees_image0 = seen_img == 1 and not after_eos
        assert bool(changed[s]) == sees_image0, (s, tok)
        if tok == eos:
            after_eos = True


def test_converter_refuses_inconsistent_inputs():
    model = _model("openflamingo")
    with tempfile.TemporaryDirectory() as d:
        paths = write_layouts(model, d, os.path.join(PARITY, "openflamingo", "tokenizer.model"))
        of = torch.load(paths["openflamingo"])
        key = next(k for k in of if k.endswith("0.to_kv.weight") and k.startswith("perceiver."))
        of[key] = of[key][:-1]
        bad = os.path.join(d, "bad.pt")
        torch.save(of, bad)
        args = [a if a != paths["openflamingo"] else bad for a in paths["convert_args"]]
        r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), *args, "--out",
                            os.path.join(d, "out"), "--quiet"], capture_output=True, text=True)
        assert r.returncode == 2 and key in r.stderr, r.stderr
        # gated blocks at layers that fit no (i+1) % N rule
        of = torch.load(paths["openflamingo"])
        moved = {k.replace("model.layers.3.", "model.layers.2."): v for k, v in of.items()}
        torch.save(moved, bad)
        r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), *args, "--out",
                            os.path.join(d, "out2"), "--quiet"], capture_output=True, text=True)
        assert r.returncode == 2 and "follow neither" in r.stderr, r.stderr


def test_converter_folds_openflamingo_alias_prefixes():
    """v1 checkpoints may hold each block twice (lang_encoder.gated_cross_attn_layers.{i}.* as
    well) and frozen LM copies (old_decoder_blocks.*); identical aliases convert to the same
    directory, a differing alias is refused."""
    from safetensors.torch import load_file

    model = _model("openflamingo")
    with tempfile.TemporaryDirectory() as d:
        paths = write_layouts(model, d, os.path.join(PARITY, "openflamingo", "tokenizer.model"))
        of = torch.load(paths["openflamingo"])
        tag = ".gated_cross_attn_layer."
        aliased = dict(of)
        for k, v in of.items():
            if tag in k:
                i = k.split(".")[3]
                aliased[f"lang_encoder.gated_cross_attn_layers.{i}.{k.split(tag)[1]}"] = v.clone()
        aliased["lang_encoder.old_decoder_blocks.1.mlp.up_proj.weight"] = torch.zeros(3, 3)
        only_alias = {k: v for k, v in aliased.items() if tag not in k}
        outs = []
        for n, ck in (("plain", of), ("both", aliased), ("alias", only_alias)):
            path = os.path.join(d, n + ".pt")
            torch.save(ck, path)
            args = [a if a != paths["openflamingo"] else path for a in paths["convert_args"]]
            r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), *args, "--out",
                                os.path.join(d, n), "--quiet"], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            outs.append(load_file(os.path.join(d, n, "model.safetensors")))
        for w in outs[1:]:
            assert set(w) == set(outs[0]) and all(torch.equal(w[k], outs[0][k]) for k in w)
        key = next(k for k in aliased if k.startswith("lang_encoder.gated_cross_attn_layers."))
        aliased[key] = aliased[key] + 1
        torch.save(aliased, os.path.join(d, "bad.pt"))
        args = [a if a != paths["openflamingo"] else os.path.join(d, "bad.pt") for a in paths["convert_args"]]
        r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), *args, "--out",
                            os.path.join(d, "bad"), "--quiet"], capture_output=True, text=True)
        assert r.returncode == 2 and "differs from its alias" in r.stderr, r.stderr


def test_converter_infers_dm_nfnet_f0():
    """A timm dm_nfnet_f0 state dict (random init: nothing is downloaded) gives F0's config."""
    import timm

    from convert.vision import convert_timm_nfnet

    net = timm.create_model("dm_nfnet_f0", pretrained=False)
    tensors, cfg, tap_ch, variant = convert_timm_nfnet(net.state_dict(), "dm_nfnet_f0")
    assert variant[0] == "F0" and cfg["image_size"] == 256 and tap_ch == 1536
    assert cfg["depths"] == [1, 2, 6, 3] and cfg["widths"] == [256, 512, 1536, 1536]
    assert cfg["stem_channels"] == [16, 32, 64, 128] and cfg["group_width"] == 128
    assert cfg["bottleneck_ratio"] == 0.5 and cfg["se_ratio"] == 0.5
    assert cfg["final_conv_channels"] == 3072
    n = sum(t.numel() for t in tensors.values())
    assert abs(n - 68.42e6) < 0.01e6, n  # architecture.md §1.1: F0 without fc
    assert tensors["vision.stages.2.0.conv2.weight"].shape == (768, 128, 3, 3)


def test_converter_reads_sharded_pytorch_bin_llama():
    """A HF LLaMA directory with pytorch_model-0000x.bin shards converts to the same tensors."""
    from safetensors.torch import load_file

    model = _model("openflamingo")
    with tempfile.TemporaryDirectory() as d:
        paths = write_layouts(model, d, os.path.join(PARITY, "openflamingo", "tokenizer.model"))
        outs = []
        for n in ("st", "bin"):
            if n == "bin":
                hf = paths["llama"]
                sd = load_file(os.path.join(hf, "model.safetensors"))
                os.remove(os.path.join(hf, "model.safetensors"))
                keys = sorted(sd)
                torch.save({k: sd[k] for k in keys[::2]}, os.path.join(hf, "pytorch_model-00001-of-00002.bin"))
                torch.save({k: sd[k] for k in keys[1::2]}, os.path.join(hf, "pytorch_model-00002-of-00002.bin"))
            r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), *paths["convert_args"],
                                "--out", os.path.join(d, n), "--quiet"], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            outs.append(load_file(os.path.join(d, n, "model.safetensors")))
        assert set(outs[0]) == set(outs[1]) and all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_converter_dtype_f16_roundtrip():
    model = _model("openflamingo")
    with tempfile.TemporaryDirectory() as d:
        paths = write_layouts(model, d, os.path.join(PARITY, "openflamingo", "tokenizer.model"))
        out = os.path.join(d, "m16")
        r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), *paths["convert_args"],
                            "--out", out, "--dtype", "f16", "--quiet"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        from safetensors.torch import load_file

        w = load_file(os.path.join(out, "model.safetensors"))
        assert w["lm.layers.0.mlp.up_proj.weight"].dtype == torch.float16
        assert w["lm.norm.weight"].dtype == torch.float32
        assert w["xattn.0.attn_gate"].dtype == torch.float32
        with open(os.path.join(out, "config.json")) as f:
            assert json.load(f)["weights"]["dtype"] == "f16"


def test_batched_forward_matches_single_and_trains():
    """forward_batch (the training entry) equals the per-prompt forward and back-propagates
    into the gates, the resampler and the vision encoder."""
    for name in ("openflamingo", "idefics", "video"):
        e = _expected(name)
        model = _model(name)
        ids, px = e["prompt_ids"], _pixels(e)
        one = model(ids, px)["logits"]
        batch = model.forward_batch(torch.stack([ids, ids]), torch.stack([torch.stack(px)] * 2))
        assert torch.allclose(batch[0], one, rtol=1e-5, atol=1e-5), name
        assert torch.allclose(batch[1], one, rtol=1e-5, atol=1e-5), name
        model.train()
        loss = torch.nn.functional.cross_entropy(batch[:, :-1].reshape(-1, batch.shape[-1]),
                                                 torch.stack([ids, ids])[:, 1:].reshape(-1))
        loss.backward()
        for n, p in model.named_parameters():
            if n.endswith(("attn_gate", "alpha_cross_attn")) or n.endswith("latents") \
                    or n == "vision.stem.conv1.weight":
                assert p.grad is not None and float(p.grad.abs().sum()) > 0, (name, n)


def _run_all():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print(f"PASS {name}")
        except Exception as ex:  # noqa: BLE001 - report every failing test, then fail
            failed += 1
            print(f"FAIL {name}: {type(ex).__name__}: {ex}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_run_all())
