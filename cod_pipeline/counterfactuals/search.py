"""Teacher-guided minimal-edit counterfactual search (the offline CFE generator).

For every original text, with the teacher's label ``y``:

1. rank word positions by occlusion importance (one batched teacher call: how much the
   teacher's preference for ``y`` drops when the word is removed);
2. beam search over sets of word edits at the most important positions (plus negation
   sites), depth by depth up to ``max_edits``; all candidates of a depth are scored in
   batched teacher calls (across originals, at most ``batch_size`` texts per call);
3. stop at the first depth where some candidate flips the teacher; among the flips pick the
   one closest to the decision boundary, with a fluency penalty (rare inserted words,
   content-word deletions).

Edit kinds: POS-preserving substitution by lexicon opposites, negation insertion
("is" -> "is not", "works" -> "does not work") and removal ("not", "never", "doesn't",
"does n't"), deletion; for ``task="acceptability"``: adjacent swap, agreement change,
function-word drop, duplication. Any other task: deletion and negation only.

Every returned counterfactual was scored by the teacher and flips it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import lexicon as lex
from .quality import margin  # the gate's margin too: search and gate agree on what a weak flip is

__all__ = [
    "SearchConfig",
    "SearchResult",
    "Edit",
    "Token",
    "tokenize",
    "render",
    "candidate_edits",
    "neighbours",
    "search_cfe",
    "random_edits",
]


@dataclass
class SearchConfig:
    max_edits: int = 4
    beam_size: int = 4
    top_positions: int = 6  # most important word positions explored (occlusion)
    max_candidates_per_position: int = 4
    fluency_weight: float = 0.1
    task: str = "sentiment"  # "sentiment" | "acceptability" | anything else (generic: deletion/negation only)
    batch_size: int = 64  # teacher calls are batched
    extra_negation_sites: int = 2  # auxiliary / negation positions explored beyond top_positions
    fallback: bool = True  # retry unflipped originals allowing deletion of any word
    min_margin: float = 0.0  # a flip must beat the runner-up class by this much (cfe.min_margin)
    target_margin: float = 0.0  # among flips, prefer this margin: 0 = nearest the boundary, 1 = most confident


@dataclass
class SearchResult:
    text: str | None  # the CFE, None if no flip found within max_edits
    label: int | None  # the teacher's argmax on the CFE
    probs: list[float] | None  # teacher probabilities on the CFE
    orig_probs: list[float]
    n_edits: int
    edits: list[str] = field(default_factory=list)  # e.g. ["good -> bad", "+not", "-very"]
    teacher_calls: int = 0  # texts scored by the teacher for this original
    near: str | None = None  # no flip: the candidate closest to flipping (the near-flip policy's partner)
    near_probs: list[float] | None = None
    lm_logprob: float | None = None  # mean token log-probability of the CFE (with a language model)
    lm_logprob_original: float | None = None


# ----------------------------------------------------------------------------- tokens

@dataclass(frozen=True)
class Token:
    ws: str  # whitespace before the chunk
    prefix: str  # leading punctuation
    core: str  # the word ("" for pure punctuation)
    suffix: str  # trailing punctuation

    @property
    def is_word(self) -> bool:
        return any(ch.isalnum() for ch in self.core)


_CHUNK_RE = re.compile(r"(\s*)(\S+)")
_SPLIT_RE = re.compile(r"^(\W*?)(\w(?:.*\w)?|n['’]t)?(\W*)$", re.S)


def tokenize(text: str) -> list[Token]:
    """Whitespace chunks split into leading punctuation, word core and trailing punctuation;
    ``"".join`` of the parts gives back the text (up to trailing whitespace)."""
    out: list[Token] = []
    for m in _CHUNK_RE.finditer(text or ""):
        ws, chunk = m.group(1), m.group(2)
        sm = _SPLIT_RE.match(chunk)
        if sm is None or sm.group(2) is None:
            out.append(Token(ws, chunk, "", ""))
        else:
            out.append(Token(ws, sm.group(1), sm.group(2), sm.group(3)))
    return out


def _case_like(new: str, old: str) -> str:
    if len(old) > 1 and old.isupper():
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


_AN_EXCEPTIONS = ("one", "once", "use", "usu", "uni", "eu", "ub")
_AN_SPECIAL = ("hour", "honest", "honor", "honour", "heir")


def _wants_an(word: str) -> bool:
    w = word.lower()
    if w.startswith(_AN_SPECIAL):
        return True
    return w[:1] in "aeiou" and not w.startswith(_AN_EXCEPTIONS)


def _fix_articles(tokens: Sequence[Token], repl: dict[int, tuple[str, ...]]) -> dict[int, tuple[str, ...]]:
    """'a' / 'an' agree with the word that follows them after the edits (only where edited)."""
    if not repl:
        return repl
    for j, t in enumerate(tokens):
        if t.core.lower() not in ("a", "an") or t.suffix or j in repl:
            continue
        following: str | None = None
        changed = False
        for k in range(j + 1, len(tokens)):
            if k in repl:
                changed = True
                if repl[k]:
                    following = repl[k][0]
                    break
                continue
            if tokens[k].is_word:
                following = tokens[k].core if not tokens[k].prefix else None
                break
            break
        if not changed or not following or following.lower() in lex.FUNCTION_WORDS:
            continue
        art = "an" if _wants_an(following) else "a"
        if art != t.core.lower():
            repl[j] = (_case_like(art, t.core) if t.core[:1].isupper() else art,)
    return repl


def render(tokens: Sequence[Token], repl: dict[int, tuple[str, ...]] | None = None) -> str:
    """Detokenise ``tokens`` with the word cores at the positions in ``repl`` replaced by the
    given words (an empty tuple deletes the word, keeping its punctuation)."""
    repl = _fix_articles(tokens, dict(repl or {}))
    parts: list[str] = []
    carry_prefix = ""
    for i, t in enumerate(tokens):
        if i not in repl:
            ws = t.ws if parts else ""
            parts.append(ws + carry_prefix + t.prefix + t.core + t.suffix)
            carry_prefix = ""
            continue
        words = list(repl[i])
        if words:
            if words[0].lower() != t.core.lower():
                words[0] = _case_like(words[0], t.core)
            ws = t.ws if parts else ""
            parts.append(ws + carry_prefix + t.prefix + " ".join(words) + t.suffix)
            carry_prefix = ""
        else:  # deletion: the prefix moves to the next word, the suffix sticks to the previous one
            carry_prefix += t.prefix
            if t.suffix:
                if parts:
                    parts[-1] = parts[-1] + t.suffix
                else:
                    carry_prefix += t.suffix
    if carry_prefix:
        parts.append(carry_prefix)
    text = "".join(parts).strip()
    # A sentence that started with a capital letter keeps doing so.
    first = next((t for t in tokens if t.is_word), None)
    if first is not None and first.core[:1].isupper() and text[:1].islower():
        text = text[:1].upper() + text[1:]
    return text


# ----------------------------------------------------------------------------- edits

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


def _negation_edits(tokens: Sequence[Token], i: int) -> list[Edit]:
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


def candidate_edits(tokens: Sequence[Token], i: int, task: str = "sentiment", max_candidates: int = 4,
                    relaxed: bool = False) -> list[Edit]:
    """Single edits at word position ``i`` (at most ``max_candidates``).

    For sentiment, nouns, verbs and names are only deleted when ``relaxed`` (the fallback
    pass for originals the fluent edits could not flip)."""
    t = tokens[i]
    if not t.is_word:
        return []
    w = t.core.lower()
    out: list[Edit] = []
    if task == "acceptability":
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
    neg = _negation_edits(tokens, i)
    out.extend(neg)
    if task != "sentiment":  # generic: negation and deletion only
        if not any(e.label.startswith("-") for e in neg):
            out.append(Edit(((i, ()),), f"-{t.core}", _deletion_cost(w)))
        return out[:max_candidates]
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


def neighbours(text: str, task: str = "sentiment", max_candidates_per_position: int = 4) -> list[tuple[str, str]]:
    """All single-edit neighbours ``(edited_text, edit_label)`` of ``text`` (no teacher)."""
    toks = tokenize(text)
    out = []
    for i in range(len(toks)):
        for e in candidate_edits(toks, i, task, max_candidates_per_position):
            out.append((render(toks, dict(e.repl)), e.label))
    return out


# ----------------------------------------------------------------------------- search

class _Pool:
    """Teacher scores with a per-run cache; at most ``batch_size`` texts per scorer call."""

    def __init__(self, scorer: Callable[[list[str]], np.ndarray], batch_size: int):
        self.scorer = scorer
        self.batch_size = max(1, int(batch_size))
        self.cache: dict[str, np.ndarray] = {}

    def score(self, texts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        for k in range(0, len(missing), self.batch_size):
            chunk = missing[k : k + self.batch_size]
            probs = np.asarray(self.scorer(chunk), dtype=np.float64)
            if probs.ndim != 2 or probs.shape[0] != len(chunk):
                raise ValueError(f"scorer returned shape {probs.shape} for {len(chunk)} texts")
            for t, p in zip(chunk, probs):
                self.cache[t] = p


class _Job:
    def __init__(self, text: str, label: int, target: int | None, cfg: SearchConfig):
        self.text = text
        self.label = int(label)
        self.target = None if target is None or int(target) == int(label) else int(target)
        self.cfg = cfg
        self.tokens = tokenize(text)
        self.requested: set[str] = {text}
        self.word_pos = [i for i, t in enumerate(self.tokens) if t.is_word]
        self.beam: list[tuple[Edit, ...]] = [()]
        self.result: SearchResult | None = None
        self.orig_probs: np.ndarray | None = None
        self.cands: dict[int, list[Edit]] = {}
        self.positions: list[int] = []
        self.order: list[int] = []
        self.flips: list[tuple] = []  # (key, state, text, probs) of the depth that first flipped, best first
        self.near: tuple[float, str, np.ndarray] | None = None

    # objective < 0  <=> flipped (up to argmax ties, checked separately)
    def objective(self, p: np.ndarray) -> float:
        if self.target is not None:
            others = np.delete(p, self.target)
            return float(others.max() - p[self.target])
        others = np.delete(p, self.label)
        return float(p[self.label] - others.max()) if others.size else float(p[self.label])

    def flipped(self, p: np.ndarray) -> bool:
        am = int(np.argmax(p))
        ok = am == self.target if self.target is not None else am != self.label
        return ok and margin(p) >= self.cfg.min_margin

    def render(self, edits: Sequence[Edit]) -> str:
        repl: dict[int, tuple[str, ...]] = {}
        for e in edits:
            repl.update(dict(e.repl))
        return render(self.tokens, repl)

    def occlusion_texts(self) -> list[str]:
        texts = [render(self.tokens, {i: ()}) for i in self.word_pos] if len(self.word_pos) > 1 else []
        self.requested.update(texts)
        return texts

    def set_positions(self, pool: _Pool) -> None:
        cfg = self.cfg
        base = self.objective(self.orig_probs)
        if len(self.word_pos) > 1:
            imp = {i: base - self.objective(pool.cache[render(self.tokens, {i: ()})]) for i in self.word_pos}
        else:
            imp = {i: 0.0 for i in self.word_pos}
        order = sorted(self.word_pos, key=lambda i: -imp[i])
        self.order = order
        chosen = order[: cfg.top_positions]
        extra = 0
        for i in order[cfg.top_positions :]:
            if extra >= cfg.extra_negation_sites:
                break
            if cfg.task != "acceptability" and _negation_edits(self.tokens, i):
                chosen.append(i)
                extra += 1
        self.positions = chosen
        self.make_candidates(relaxed=False)

    def make_candidates(self, relaxed: bool) -> None:
        cfg = self.cfg
        self.beam = [()]
        self.cands = {}
        for i in self.positions:
            c = candidate_edits(self.tokens, i, cfg.task, cfg.max_candidates_per_position, relaxed=relaxed)
            if c:
                self.cands[i] = c

    def expand(self) -> list[tuple[tuple[Edit, ...], str]]:
        out: list[tuple[tuple[Edit, ...], str]] = []
        seen: set[str] = set()
        for state in self.beam:
            used = {p for e in state for p in e.positions}
            for i, edits in self.cands.items():
                for e in edits:
                    if used.intersection(e.positions):
                        continue
                    new = tuple(sorted(state + (e,), key=lambda x: x.positions))
                    text = self.render(new)
                    if text in seen or text == self.text or not text.strip():
                        continue
                    seen.add(text)
                    out.append((new, text))
        self.requested.update(t for _, t in out)
        return out

    def fluency(self, state: Sequence[Edit]) -> float:
        return float(np.mean([e.cost for e in state])) if state else 0.0

    def update(self, expanded: list[tuple[tuple[Edit, ...], str]], pool: _Pool, depth: int) -> None:
        cfg = self.cfg
        flips = []
        scored = []
        for state, text in expanded:
            p = pool.cache[text]
            obj = self.objective(p)
            fl = cfg.fluency_weight * self.fluency(state)
            if self.flipped(p):  # -obj is the flip's margin over the original class (or to the target)
                flips.append((abs(-obj - cfg.target_margin) + fl, state, text, p))
            scored.append((obj + fl, state, text, p))
        if flips:
            self.flips = sorted(flips, key=lambda x: x[0])
            self.choose(self.flips[0])
            return
        scored.sort(key=lambda x: x[0])
        if scored and (self.near is None or self.objective(scored[0][3]) < self.near[0]):
            self.near = (self.objective(scored[0][3]), scored[0][2], scored[0][3])
        self.beam = [s for _, s, _, _ in scored[: cfg.beam_size]]

    def choose(self, flip: tuple) -> None:
        _, state, text, p = flip
        self.result = SearchResult(
            text=text, label=int(np.argmax(p)), probs=[float(x) for x in p],
            orig_probs=[float(x) for x in self.orig_probs], n_edits=len(state),
            edits=[e.label for e in state], teacher_calls=len(self.requested),
        )

    def finish(self) -> SearchResult:
        if self.result is None:
            self.result = SearchResult(
                text=None, label=None, probs=None, orig_probs=[float(x) for x in self.orig_probs],
                n_edits=0, edits=[], teacher_calls=len(self.requested),
                near=self.near[1] if self.near else None,
                near_probs=[float(x) for x in self.near[2]] if self.near else None,
            )
        return self.result


def _run_group(jobs: list[_Job], pool: _Pool, cfg: SearchConfig, guide=None) -> None:
    pool.score([j.text for j in jobs])
    for j in jobs:
        j.orig_probs = pool.cache[j.text]
    occl = {id(j): j.occlusion_texts() for j in jobs}
    pool.score([t for j in jobs for t in occl[id(j)]])
    for j in jobs:
        j.set_positions(pool)
    if guide is not None:
        guide.add_edits(jobs)
    _beam_search([j for j in jobs if j.cands], pool, cfg, guide)
    if cfg.fallback and (cfg.task == "sentiment" or guide is not None):
        retry = [j for j in jobs if j.result is None]
        for j in retry:
            j.positions = j.order[: 2 * cfg.top_positions]
            j.make_candidates(relaxed=True)
        if guide is not None:
            guide.add_edits(retry)
        _beam_search([j for j in retry if j.cands], pool, cfg, guide)


def _beam_search(active: list[_Job], pool: _Pool, cfg: SearchConfig, guide=None) -> None:
    for depth in range(1, cfg.max_edits + 1):
        if not active:
            break
        expanded = {id(j): j.expand() for j in active}
        pool.score([t for j in active for _, t in expanded[id(j)]])
        nxt, flipped = [], []
        for j in active:
            if not expanded[id(j)]:
                continue
            j.update(expanded[id(j)], pool, depth)
            if j.result is None and j.beam:
                nxt.append(j)
            elif j.result is not None:
                flipped.append(j)
        if guide is not None and flipped:
            guide.rerank(flipped)  # among the fewest-edit flips, the most fluent
        active = nxt


def search_cfe(
    texts: list[str],
    labels: list[int],
    scorer: Callable[[list[str]], np.ndarray],
    cfg: SearchConfig,
    targets: list[int | None] | None = None,
    progress: bool = False,
    guide=None,
) -> list[SearchResult]:
    """Minimal word-edit counterfactuals of ``texts`` for the teacher ``scorer``.

    ``labels`` are the teacher's labels on the originals; ``scorer(list[str]) -> (n, C)``
    probabilities. A flip is ``argmax != label``, or ``argmax == target`` when a target class
    is given (a target equal to the label is ignored). Originals are searched in groups in
    lock-step so teacher calls are full batches of ``cfg.batch_size`` texts."""
    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    if targets is not None and len(targets) != len(texts):
        raise ValueError("targets and texts differ in length")
    targets = list(targets) if targets is not None else [None] * len(texts)
    jobs = [_Job(t, y, tg, cfg) for t, y, tg in zip(texts, labels, targets)]
    group = max(8, cfg.batch_size // 2)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="cfe-search", mininterval=1.0)
    for k in range(0, len(jobs), group):
        pool = _Pool(scorer, cfg.batch_size)  # cache per group keeps memory bounded
        _run_group(jobs[k : k + group], pool, cfg, guide)
        if bar is not None:
            bar.update(len(jobs[k : k + group]))
    if bar is not None:
        bar.close()
    return [j.finish() for j in jobs]


# ----------------------------------------------------------------------------- random control

def random_edits(texts: list[str], n_edits: list[int], seed: int, task: str = "sentiment") -> list[str]:
    """The control: ``n_edits[i]`` word edits of random kind (substitute by a random frequent
    word, delete, insert a random frequent word; ``acceptability`` adds adjacent swaps) at
    distinct random positions of ``texts[i]``. Seeded and deterministic; NOT validated."""
    if len(texts) != len(n_edits):
        raise ValueError("texts and n_edits differ in length")
    index = lex.wordnet_index()
    vocab = [w for w in lex.frequent_words(3000) if len(w) > 2 and (not index or w in index or w in lex.FUNCTION_WORDS)]
    vocab = vocab[:2000] or list(lex.frequent_words(2000))
    kinds = ["sub", "del", "ins"] + (["swap"] if task == "acceptability" else [])
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
