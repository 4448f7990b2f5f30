#!/usr/bin/python3
"""Writes the tokenizer test fixtures in tests/data/tokenizer/.

Run with Debian's interpreter (it has python3-sentencepiece 0.1.97, the same library the
engine links):

    /usr/bin/python3 tools/make_test_tokenizer.py [--out tests/data/tokenizer]

It trains two tiny sentencepiece models on a built-in corpus, deterministically (fixed seed,
one thread, the whole corpus, no sampling):

  tiny.model      unigram, LLaMA-like normaliser (identity, dummy prefix, extra whitespace
                  kept), byte_fallback so that any UTF-8 text round-trips.
  tiny_bpe.model  BPE with a small custom normalisation rule table, so that the model
                  carries a real (darts-clone) precompiled_charsmap for the validator tests,
                  and remove_extra_whitespaces on (the other decoding branch).

and expected.json: for a list of test strings, the ids that the engine's tokenisation
contract (docs/tokenizer.md) must produce, computed here with Python sentencepiece and the
same special-token splitting: leftmost-longest match of the special strings, each text
segment in between encoded by sentencepiece on its own, optional BOS first.
"""

import argparse
import json
import os
import random
import tempfile

import sentencepiece as spm

SEED = 1234

# Special tokens as config.json "tokens.special" gives them: ids after the sentencepiece
# vocabulary, in OpenFlamingo's order (<|endofchunk|>, <image>, then <PAD>).
VOCAB = 400


def specials_for(vocab):
    return {"<|endofchunk|>": vocab, "<image>": vocab + 1, "<PAD>": vocab + 2}


def corpus():
    rng = random.Random(SEED)
    sizes = ["large", "small", "tiny", "big", "medium"]
    colours = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
    shapes = ["circle", "triangle", "square", "star", "rectangle", "hexagon"]
    relations = ["above", "below", "left of", "right of", "next to", "inside"]
    lines = []
    for _ in range(400):
        a = (rng.choice(sizes), rng.choice(colours), rng.choice(shapes))
        b = (rng.choice(sizes), rng.choice(colours), rng.choice(shapes))
        rel = rng.choice(relations)
        lines.append(f"a {a[0]} {a[1]} {a[2]} {rel} a {b[0]} {b[1]} {b[2]}")
        lines.append(f"Question: what colour is the {a[2]}? Short answer: {a[1]}")
        lines.append(f"Question: how many shapes are there? Short answer: {rng.randint(1, 12)}")
        lines.append(f"Output: An image of a {a[1]} {a[2]}.")
    lines += [
        "The café in Zürich serves crème brûlée and naïve smörgåsbord.",
        "Ein großer roter Kreis über einem kleinen blauen Dreieck.",
        "Un grand cercle rouge au-dessus d'un petit triangle bleu.",
        "Большой красный круг над маленьким синим треугольником.",
        "東京の大きな赤い丸と小さな青い三角形。",
        "numbers 0 1 2 3 4 5 6 7 8 9 10 100 2024",
    ] * 5
    return lines


def train(out_path, model_type, rule_tsv=None, remove_extra_ws=False):
    spm.set_random_generator_seed(SEED)
    # The trainer records its input paths in the model, so train in a scratch directory with
    # fixed relative names: the output must be byte-identical from run to run.
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            with open("corpus.txt", "w", encoding="utf-8") as f:
                f.write("\n".join(corpus()) + "\n")
            kwargs = dict(
                input="corpus.txt",
                model_prefix="m",
                model_type=model_type,
                vocab_size=VOCAB,
                byte_fallback=True,
                split_digits=True,
                character_coverage=1.0,
                num_threads=1,
                input_sentence_size=0,
                shuffle_input_sentence=False,
                add_dummy_prefix=True,
                remove_extra_whitespaces=remove_extra_ws,
                unk_id=0,
                bos_id=1,
                eos_id=2,
                pad_id=-1,
                minloglevel=2,
            )
            if rule_tsv is None:
                kwargs["normalization_rule_name"] = "identity"
            else:
                with open("rules.tsv", "w", encoding="utf-8") as f:
                    f.write(rule_tsv)
                kwargs["normalization_rule_tsv"] = "rules.tsv"
            spm.SentencePieceTrainer.train(**kwargs)
            with open("m.model", "rb") as f:
                data = f.read()
        finally:
            os.chdir(cwd)
    with open(out_path, "wb") as f:
        f.write(data)


# Full-width Latin capitals and digits to ASCII, ligatures expanded, the NBSP to a space:
# enough rules for a multi-block darts-clone trie, small enough for a few-KB file.
def rule_table():
    rows = []
    for i in range(26):
        rows.append(f"{0xFF21 + i:04X}\t{0x41 + i:04X}")
        rows.append(f"{0xFF41 + i:04X}\t{0x61 + i:04X}")
    for i in range(10):
        rows.append(f"{0xFF10 + i:04X}\t{0x30 + i:04X}")
    rows += ["FB01\t66 69", "FB02\t66 6C", "00A0\t20", "2026\t2E 2E 2E"]
    return "\n".join(rows) + "\n"


def split_special(text, specials):
    """Leftmost-longest split on the special strings, as the C++ tokenizer does."""
    out, start, i = [], 0, 0
    while i < len(text):
        best = None
        for s in specials:
            if text.startswith(s, i) and (best is None or len(s) > len(best)):
                best = s
        if best is None:
            i += 1
            continue
        if i > start:
            out.append(text[start:i])
        out.append(best)
        i += len(best)
        start = i
    if start < len(text):
        out.append(text[start:])
    return out


def encode(sp, text, specials, add_bos, bos):
    ids = [bos] if add_bos else []
    for seg in split_special(text, specials):
        if seg in specials:
            ids.append(specials[seg])
        else:
            ids += sp.encode(seg)
    return ids


TEXTS = [
    "a large red circle above a small blue triangle",
    "Hello world",
    "",
    " ",
    "  two leading spaces",
    "trailing spaces  ",
    "double  space inside",
    "<image>Output:",
    "<image>Output: An image of a red circle.<|endofchunk|>",
    "<image>An image of two cats.<|endofchunk|><image>An image of a bathroom sink.<|endofchunk|><image>An image of",
    "Question: what colour is the star? Short answer: green<|endofchunk|><image>",
    "text before the first image <image> and after",
    "<image> Output: with a space after the marker",
    "a<image>b",
    "<image><image><image>",
    "<|endofchunk|><image><PAD>",
    "x<PAD><image><|endofchunk|>y",
    "<imag",
    "<image",
    "<image>>",
    "<<image>",
    "<|endofchunk|",
    "<|endofchunk|><",
    "café crème brûlée",
    "Zürich 東京 Москва",
    "emoji 😀 and 🐈‍⬛ cat",
    "\u00e9\u0301 combining",
    "tab\tand\nnewline",
    "12345 + 678 = 13023",
    "ＦＵＬＬ ｗｉｄｔｈ ｆｉｎｅ…",
    "\u00a0nbsp\u00a0inside",
    "\x00embedded nul",
]

# Overlapping special strings: leftmost-longest must pick "<image><image>" over "<image>" and
# "<im" must not shadow the longer match that starts at the same byte.
OVERLAP_SPECIALS = {"<im": VOCAB, "<image>": VOCAB + 1, "<image><image>": VOCAB + 2}
OVERLAP_TEXTS = [
    "<image><image>",
    "<image><image><image>",
    "<im<image>",
    "<imag<image>x",
    "a<im>b",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                 "data", "tokenizer"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    models = {
        "tiny.model": dict(model_type="unigram"),
        "tiny_bpe.model": dict(model_type="bpe", rule_tsv=rule_table(), remove_extra_ws=True),
    }
    configs = []
    for name, kw in models.items():
        path = os.path.join(args.out, name)
        train(path, **kw)
        sp = spm.SentencePieceProcessor(model_file=path)
        assert sp.get_piece_size() == VOCAB, sp.get_piece_size()
        for specials, texts, add_bos in [
            (specials_for(VOCAB), TEXTS, True),
            (specials_for(VOCAB), TEXTS, False),
            (OVERLAP_SPECIALS, OVERLAP_TEXTS, False),
        ]:
            cases = []
            for t in texts:
                ids = encode(sp, t, specials, add_bos, sp.bos_id())
                case = {"text": t, "ids": ids}
                if not any(s in t for s in specials):
                    case["decoded"] = sp.decode(ids)
                cases.append(case)
            configs.append({
                "model": name,
                "vocab_size": VOCAB + len(specials),
                "bos": sp.bos_id(),
                "eos": sp.eos_id(),
                "add_bos": add_bos,
                "special": specials,
                "cases": cases,
            })
    with open(os.path.join(args.out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/make_test_tokenizer.py",
                   "sentencepiece": spm.__version__, "configs": configs},
                  f, ensure_ascii=True, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
