"""The random-edit control: word edits of the same size as the CFEs, at random, not validated."""
from __future__ import annotations

import random

from . import lexicon as lex
from .tasks import get_task
from .tokens import render, tokenize


def random_edits(texts: list[str], n_edits: list[int], seed: int, task: str = "sentiment") -> list[str]:
    """The control: ``n_edits[i]`` word edits of random kind (substitute by a random frequent
    word, delete, insert a random frequent word; the task's ``random_kinds``: acceptability adds adjacent swaps) at
    distinct random positions of ``texts[i]``. Seeded and deterministic; NOT validated."""
    if len(texts) != len(n_edits):
        raise ValueError("texts and n_edits differ in length")
    index = lex.wordnet_index()
    vocab = [w for w in lex.frequent_words(3000) if len(w) > 2 and (not index or w in index or w in lex.FUNCTION_WORDS)]
    vocab = vocab[:2000] or list(lex.frequent_words(2000))
    kinds = list(get_task(task).random_kinds)
    out = []
    for idx, (text, n) in enumerate(zip(texts, n_edits)):
        rng = random.Random(f"{seed}:{idx}")
        toks = tokenize(text)
        words = [i for i, t in enumerate(toks) if t.is_word]
        n = max(0, int(n))
        if n == 0 or not toks:
            out.append(text)
            continue
        if not words:
            words = list(range(len(toks)))
        positions = rng.sample(words, min(n, len(words)))
        repl: dict[int, tuple[str, ...]] = {}
        for i in positions:
            if i in repl:
                continue
            kind = rng.choice(kinds)
            core = toks[i].core or toks[i].prefix
            if kind == "del" and len(words) - sum(1 for v in repl.values() if v == ()) <= 1:
                kind = "sub"
            if kind == "swap":
                j = i + 1
                if j < len(toks) and j not in repl and toks[j].is_word and toks[j].core.lower() != core.lower():
                    repl[i] = (toks[j].core,)
                    repl[j] = (core,)
                    continue
                kind = "sub"
            if kind == "del":
                repl[i] = ()
            elif kind == "ins":
                w = rng.choice(vocab)
                repl[i] = (w, core) if rng.random() < 0.5 else (core, w)
            else:
                w = rng.choice(vocab)
                while w == core.lower():
                    w = rng.choice(vocab)
                repl[i] = (w,)
        # Texts shorter than n get the remaining edits as insertions at the end.
        extra = n - len(positions)
        if extra > 0:
            last = max(repl) if repl else len(toks) - 1
            cur = repl.get(last, (toks[last].core,))
            repl[last] = tuple(cur) + tuple(rng.choice(vocab) for _ in range(extra))
        out.append(render(toks, repl))
    return out
