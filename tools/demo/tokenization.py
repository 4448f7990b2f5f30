"""The demo tokenizer: a sentencepiece model trained on scene text, and the engine's
tokenisation contract (docs/tokenizer.md): BOS first, special strings split out of the prompt,
every text segment between them encoded by sentencepiece on its own."""

from __future__ import annotations

import io
import random
import re

import sentencepiece as spm

import scenes

IMAGE = "<image>"
EOC = "<|endofchunk|>"
PAD = "<PAD>"
SPECIALS = [EOC, IMAGE, PAD]          # user-defined pieces: ids 3, 4, 5 after unk/bos/eos


def train_tokenizer(path: str, seed: int, vocab_size: int = 192, lines: int = 20000) -> None:
    rng = random.Random(seed)
    corpus = "\n".join(scenes.text_corpus(rng, lines))
    # Written through model_writer: with model_prefix the output path would be stored in the
    # file, and two runs into different --out directories would differ by that path.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus.split("\n")),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        hard_vocab_limit=False,
        character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        user_defined_symbols=SPECIALS,
        num_threads=1,
        # Fixed seed-independent training: sentencepiece is deterministic for one thread.
        minloglevel=2,
    )
    with open(path, "wb") as f:
        f.write(model.getvalue())


class Tokenizer:
    def __init__(self, path: str):
        self.sp = spm.SentencePieceProcessor(model_file=path)
        self.special = {s: self.sp.piece_to_id(s) for s in SPECIALS}
        for s, i in self.special.items():
            if self.sp.id_to_piece(i) != s:
                raise ValueError(f"{path}: special piece {s} missing")
        self.bos, self.eos = self.sp.bos_id(), self.sp.eos_id()
        self.image, self.eoc, self.pad = self.special[IMAGE], self.special[EOC], self.special[PAD]
        self._split = re.compile("(" + "|".join(re.escape(s) for s in SPECIALS) + ")")

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = [self.bos] if add_bos else []
        for part in self._split.split(text):
            if not part:
                continue
            if part in self.special:
                ids.append(self.special[part])
            else:
                ids += self.sp.encode(part)
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([i for i in ids if i not in (self.bos, self.eos, self.pad)])
