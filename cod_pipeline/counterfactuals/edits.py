"""Single word edits at one position, and their fluency costs. The edit families a task uses
(``sentiment_edits``, ``grammar_edits``, ``generic_edits``) are chosen in ``tasks.py``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import lexicon as lex
from .tokens import Token


@dataclass(frozen=True)
class Edit:
    repl: tuple[tuple[int, tuple[str, ...]], ...]  # (position, new words) pairs
    label: str
    cost: float  # fluency cost in [0, 1]

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(p for p, _ in self.repl)


_NEG_CONTRACTION_RE = re.compile(r"^(\w+)n['’]t$", re.I)
_SPECIAL_CONTRACTIONS = {"can": "can", "ca": "can", "wo": "will", "sha": "shall", "ai": "is"}
_AUX_ALWAYS = frozenset("is was are were am can could will would should shall may might must".split())
_AUX_DO_HAVE = frozenset("do does did has have had".split())
_PRONOUN_CONTRACTION_RE = re.compile(
    r"^(it|that|he|she|there|what|who|here|this)['’]s$|^(they|we|you)['’]re$|^i['’]m$", re.I
)
_AUX_CONTRACTION_RE = re.compile(r"\w['’](s|re|m|ve|d|ll)$", re.I)
_DO_SUBJECTS = frozenset("i you we they".split())


def _deletion_cost(word: str) -> float:
    w = word.lower()
    if w in lex.NEGATIONS or w in lex.INTENSIFIERS:
        return 0.1
    pos = lex.guess_pos(w)
    if pos in ("func", "adv"):
        return 0.2
    if pos == "adj":
        return 0.35
    return 0.8


def _sub_cost(words: Sequence[str]) -> float:
    if not words:
        return 0.0
    return float(np.mean([lex.fluency_cost(w) for w in words]))


def negation_edits(tokens: Sequence[Token], i: int) -> list[Edit]:
    """Negation insertion / removal at word position ``i``."""
    t = tokens[i]
    w = t.core.lower()
    nxt = next((tokens[j].core.lower() for j in range(i + 1, len(tokens)) if tokens[j].is_word), "")
    prv_j = next((j for j in range(i - 1, -1, -1) if tokens[j].is_word), None)
    prv = tokens[prv_j].core.lower() if prv_j is not None else ""
    out: list[Edit] = []
    # --- removal
    if w in ("n't", "n’t"):
        repl: list[tuple[int, tuple[str, ...]]] = [(i, ())]
        if prv in ("ca", "wo", "sha", "ai") and prv_j is not None:
            repl.append((prv_j, (_SPECIAL_CONTRACTIONS[prv],)))
        out.append(Edit(tuple(sorted(repl)), "-n't", 0.05))
        return out
    m = _NEG_CONTRACTION_RE.match(t.core)
    if m:
        stem = m.group(1)
        base = _SPECIAL_CONTRACTIONS.get(stem.lower(), stem)
        if stem.lower() == "wo":
            base = "will"
        out.append(Edit(((i, (base,)),), f"{t.core} -> {base}", 0.05))
        return out
    if w == "cannot":
        return [Edit(((i, ("can",)),), "cannot -> can", 0.05)]
    if w in ("not", "never"):
        return [Edit(((i, ()),), f"-{w}", 0.05)]
    if w in ("no", "without", "hardly", "barely"):
        return []  # substitutions/deletions handle these
    # --- insertion
    if nxt in lex.NEGATIONS or nxt in ("n't", "n’t"):
        return out
    if w in _AUX_ALWAYS or (w in _AUX_DO_HAVE and lex.guess_pos(nxt) in ("verb", "adv")):
        out.append(Edit(((i, (t.core, "not")),), "+not", 0.05))
        return out
    if _PRONOUN_CONTRACTION_RE.match(t.core):
        out.append(Edit(((i, (t.core, "not")),), "+not", 0.05))
        return out
    pos, lemma, form = lex.word_form(w)
    if lemma in ("be", "have", "do"):
        return out
    # the two previous words (an adverb may sit between an auxiliary and the verb)
    prev_words = [tokens[j].core.lower() for j in range(i - 1, -1, -1) if tokens[j].is_word][:2]
    for k, pw in enumerate(prev_words):
        if pw in lex.AUXILIARIES or pw == "to" or _AUX_CONTRACTION_RE.search(pw):
            return out
        if k == 0 and lex.guess_pos(pw) != "adv":
            break
    verbish = pos == "verb" or any(p == "verb" for _, p, _ in lex.lemmas(w))
    if not verbish:
        return out
    # do-support needs a subject right before the verb (or a verb opening the sentence)
    subject_before = (
        prv_j is None
        or prv in lex.SUBJECT_PRONOUNS
        or (tokens[prv_j].core[:1].isupper() and prv not in lex.FUNCTION_WORDS)
        or (lex.guess_pos(prv) == "noun" and not tokens[prv_j].suffix)
        or (prv_j > 0 and tokens[prv_j - 1].core.lower() in _DETERMINERS_SUBJ and not tokens[prv_j].suffix)
    )
    if not subject_before:
        return out
    vlemma = next((l for l, p, _ in lex.lemmas(w) if p == "verb"), lemma)
    vform = next((f for _, p, f in lex.lemmas(w) if p == "verb"), form)
    if vform == "s":
        aux = "does"
    elif vform == "ed" and not w.endswith(("en", "wn")):
        aux = "did"
    elif vform == "base" and prv in _DO_SUBJECTS:
        aux = "do"
    else:
        return out
    out.append(Edit(((i, (aux, "not", vlemma)),), f"{t.core} -> {aux} not {vlemma}", 0.1))
    return out


_DETERMINERS_SUBJ = frozenset("the a an this that its his her their our your my".split())
_COPULAS = frozenset("is was are were be been being am seems seemed seem looks looked feels felt remains remained becomes became".split())


def _context_pos(tokens: Sequence[Token], i: int) -> str | None:
    """POS guess of word ``i`` refined by its left neighbour."""
    w = tokens[i].core.lower()
    pos = lex.guess_pos(w)
    if pos == "func":
        return pos
    options = {p for _, p, _ in lex.lemmas(w)}
    prv_j = next((j for j in range(i - 1, -1, -1) if tokens[j].is_word), None)
    prv = tokens[prv_j].core.lower() if prv_j is not None else ""
    if prv in lex.SUBJECT_PRONOUNS - {"it", "that", "which"} or prv == "to":
        if "verb" in options:
            return "verb"
    if prv in ("a", "an", "the", "this", "that", "these", "those", "my", "his", "her", "its", "their", "our", "your"):
        if pos in ("verb", "adv") and ("noun" in options or "adj" in options):
            nxt = tokens[i + 1].core.lower() if i + 1 < len(tokens) and not tokens[i].suffix else ""
            nxt_noun = bool(nxt) and lex.guess_pos(nxt) == "noun"
            if "adj" in options and (nxt_noun or "noun" not in options):
                return "adj"
            return "noun" if "noun" in options else pos
    if prv in ("that", "which", "who") and "verb" in options and w.endswith(("s", "ed")):
        return "verb"
    # first previous word that is not an adverb: a copula makes an adjective likely
    for j in range(i - 1, -1, -1):
        if not tokens[j].is_word:
            break
        pw = tokens[j].core.lower()
        if pw in _COPULAS or pw in lex.INTENSIFIERS:
            if "adj" in options:
                return "adj"
            break
        if lex.guess_pos(pw) != "adv":
            break
    return pos


def grammar_edits(tokens: Sequence[Token], i: int, max_candidates: int = 4, relaxed: bool = False) -> list[Edit]:
    """Acceptability: agreement change, adjacent swap, word drop, duplication."""
    t = tokens[i]
    if not t.is_word:
        return []
    w = t.core.lower()
    out: list[Edit] = []
    swap = lex.agreement_swap(w)
    if swap:
        out.append(Edit(((i, (swap,)),), f"{t.core} -> {swap}", _sub_cost([swap])))
    nxt_j = i + 1 if i + 1 < len(tokens) and tokens[i + 1].is_word else None
    if nxt_j is not None:
        a, b = t.core, tokens[nxt_j].core
        if a.lower() != b.lower():
            ca = b.lower() if i > 0 or not a[:1].isupper() else b
            out.append(Edit(((i, (ca,)), (nxt_j, (a.lower() if i == 0 else a,))), f"{a} {b} -> {b} {a}", 0.3))
    out.append(Edit(((i, ()),), f"-{t.core}", 0.2 if w in lex.FUNCTION_WORDS else 0.5))
    out.append(Edit(((i, (t.core, w)),), f"+{w}", 0.3))
    return out[:max_candidates]


def generic_edits(tokens: Sequence[Token], i: int, max_candidates: int = 4, relaxed: bool = False) -> list[Edit]:
    """Any task: negation and deletion only."""
    t = tokens[i]
    if not t.is_word:
        return []
    w = t.core.lower()
    neg = negation_edits(tokens, i)
    out: list[Edit] = list(neg)
    if not any(e.label.startswith("-") for e in neg):
        out.append(Edit(((i, ()),), f"-{t.core}", _deletion_cost(w)))
    return out[:max_candidates]


def sentiment_edits(tokens: Sequence[Token], i: int, max_candidates: int = 4, relaxed: bool = False) -> list[Edit]:
    """Sentiment: negation, POS-preserving lexicon opposites, modifier deletion. Nouns, verbs and
    names are only deleted when ``relaxed`` (the fallback pass for originals the fluent edits
    could not flip)."""
    t = tokens[i]
    if not t.is_word:
        return []
    w = t.core.lower()
    out: list[Edit] = []
    neg = negation_edits(tokens, i)
    out.extend(neg)
    if _is_proper_noun(tokens, i) or w in lex.AUXILIARIES:
        if relaxed and not neg:
            out.append(Edit(((i, ()),), f"-{t.core}", 0.9))
        return out[:max_candidates]
    pos = _context_pos(tokens, i)
    # Deleting a noun or a verb breaks the sentence: only modifiers and negations are dropped.
    nxt = tokens[i + 1].core.lower() if i + 1 < len(tokens) else ""
    deletable = (
        (relaxed or pos in ("adj", "adv") or w in lex.INTENSIFIERS or w in lex.NEGATIONS)
        and not any(e.label.startswith("-") for e in neg)
        and nxt not in ("n't", "n’t")
    )
    room = max(0, max_candidates - len(out) - int(deletable))
    if room and (pos not in (None, "func") or w in lex.CURATED_OPPOSITES):
        for c in lex.opposites(w, pos=pos if pos != "func" else None)[:room]:
            out.append(Edit(((i, (c,)),), f"{t.core} -> {c}", _sub_cost([c])))
    if deletable:
        out.append(Edit(((i, ()),), f"-{t.core}", _deletion_cost(w)))
    return out[:max_candidates]



def _is_proper_noun(tokens: Sequence[Token], i: int) -> bool:
    """Capitalised word not at the start of a sentence (names, titles)."""
    core = tokens[i].core
    if not core[:1].isupper():
        return False
    prv_j = next((j for j in range(i - 1, -1, -1) if tokens[j].core or tokens[j].prefix), None)
    if prv_j is None:
        return False
    prev = tokens[prv_j]
    end = (prev.suffix or prev.prefix if not prev.core else prev.suffix).rstrip("'\"’”)")
    return not end.endswith((".", "!", "?", ":", "--"))

