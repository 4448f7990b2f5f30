# Golden RoPE outputs from PyTorch, computed the way HF transformers (rotate-half) and Meta's
# llama reference (interleaved, complex multiply) compute them.
import json, torch
torch.manual_seed(0)
dim, heads = 16, 2
positions = [0, 1, 5, 1000, 4095, 100000]
cases = []
for theta in [10000.0, 500000.0]:
    x = (torch.rand(len(positions), heads * dim) * 4 - 2).float()
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    t = torch.tensor(positions).type_as(inv_freq)
    freqs = torch.einsum("i,j->ij", t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    xh = x.view(len(positions), heads, dim)
    def rotate_half(v):
        return torch.cat((-v[..., dim // 2:], v[..., : dim // 2]), dim=-1)
    rh = (xh * cos[:, None, :]) + (rotate_half(xh) * sin[:, None, :])
    # Meta interleaved
    freqs_m = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    fr = torch.outer(torch.tensor(positions), freqs_m).float()
    cis = torch.polar(torch.ones_like(fr), fr)
    xc = torch.view_as_complex(xh.reshape(len(positions), heads, dim // 2, 2))
    il = torch.view_as_real(xc * cis[:, None, :]).flatten(1)
    cases.append({"theta": theta, "x": x.flatten().tolist(), "rotate_half": rh.flatten().tolist(),
                  "interleaved": il.flatten().tolist()})
json.dump({"head_dim": dim, "n_heads": heads, "positions": positions, "cases": cases,
           "generator": "torch " + torch.__version__}, open("tests/data/kernels/rope_torch.json", "w"))
