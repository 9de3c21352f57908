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

Edit kinds per task live in ``tasks.py``. Every returned counterfactual was scored by the teacher and flips it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import lexicon as lex
from .edits import Edit, negation_edits
from .gate import too_far as gate_too_far
from .quality import margin  # the gate's margin too: search and gate agree on what a weak flip is
from .tasks import candidate_edits, get_task
from .tokens import protected, render, tokenize


@dataclass
class SearchConfig:
    max_edits: int = 4
    beam_size: int = 4
    top_positions: int = 6  # most important word positions explored (occlusion)
    max_candidates_per_position: int = 4
    fluency_weight: float = 0.1
    task: str = "sentiment"  # a tasks.TASKS name; anything else: tasks.GENERIC (deletion/negation only)
    batch_size: int = 64  # teacher calls are batched
    extra_negation_sites: int = 2  # auxiliary / negation positions explored beyond top_positions
    fallback: bool = True  # retry unflipped originals allowing deletion of any word
    min_margin: float = 0.0  # a flip must beat the runner-up class by this much (cfe.min_margin)
    target_margin: float = 0.0  # among flips, prefer this margin: 0 = nearest the boundary, 1 = most confident
    within_gate: bool = False  # a flip farther than max_edit_distance (the gate's) is no flip: others are chosen
    max_edit_distance: float | None = None
    free_edit_words: int = 0
    reader_margin: float = 0.0  # with a second reader: it must give the flip's class by this margin
    deletions: str = "any"  # any | modifiers: only adjectives, adverbs and negations are deleted (fluent tasks)
    protect: bool = False  # names, @mentions, #hashtags, numbers and links are never edited (tokens.protected)


def breaks_sentence(tokens, edit: Edit) -> bool:
    """A deletion of anything but a modifier or a negation: "She wants justice" -> "Justice", or
    "A piquant meditation on the things" -> "On the things", reads as nobody's sentence."""
    if any(new for _, new in edit.repl):
        return False
    words = [tokens[i].core.lower() for i, _ in edit.repl]
    return any(w not in lex.NEGATIONS and w not in lex.INTENSIFIERS and lex.word_class(w) not in ("adj", "adv")
               for w in words)


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


class ScoreCache:
    """Teacher scores with a per-run cache; at most ``batch_size`` texts per scorer call. With an
    ``exact`` scorer, ``scorer`` only screens: ``confirm`` rescores the texts that decide (flips,
    near-flips) exactly, in place."""

    def __init__(self, scorer: Callable[[list[str]], np.ndarray], batch_size: int,
                 exact: Callable[[list[str]], np.ndarray] | None = None,
                 second: Callable[[list[str]], np.ndarray] | None = None):
        self.scorer, self.exact, self.second = scorer, exact, second
        self.batch_size = max(1, int(batch_size))
        self.cache: dict[str, np.ndarray] = {}
        self.second_cache: dict[str, np.ndarray] = {}  # the second reader's probabilities (None: no reader)
        self.confirmed: set[str] = set()

    def score(self, texts: Sequence[str]) -> None:
        self._fill([t for t in texts if t not in self.cache], self.scorer)

    def confirm(self, texts: Sequence[str]) -> None:
        todo = [t for t in texts if t not in self.confirmed]
        self._fill(todo, self.exact)
        self.confirmed.update(todo)

    def _fill(self, texts: Sequence[str], scorer) -> None:
        missing = list(dict.fromkeys(texts))
        for k in range(0, len(missing), self.batch_size):
            chunk = missing[k : k + self.batch_size]
            probs = np.asarray(scorer(chunk), dtype=np.float64)
            if probs.ndim != 2 or probs.shape[0] != len(chunk):
                raise ValueError(f"scorer returned shape {probs.shape} for {len(chunk)} texts")
            for t, p in zip(chunk, probs):
                self.cache[t] = p
            fresh = [t for t in chunk if t not in self.second_cache] if self.second is not None else []
            if fresh:
                for t, q in zip(fresh, np.asarray(self.second(fresh), dtype=np.float64)):
                    self.second_cache[t] = q

    def reader(self, text: str) -> np.ndarray | None:
        return self.second_cache.get(text) if self.second is not None else None


class OriginalSearch:
    """The beam state of one original: its tokens, positions ranked by occlusion, candidate edits
    per position, the beam of edit sets, and the result."""

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

    def joint(self, pool: ScoreCache, text: str, summed: bool = False) -> float:
        """The teacher's objective; with a second reader, the worse of the two (both must move),
        or their sum (``summed``: how much a word matters to either)."""
        obj, q = self.objective(pool.cache[text]), pool.reader(text)
        if q is None:
            return obj
        return obj + self.objective(q) if summed else max(obj, self.objective(q))

    def reader_agrees(self, pool: ScoreCache, text: str, p: np.ndarray) -> bool:
        """No second reader, or it gives the teacher's new class by ``reader_margin``."""
        q = pool.reader(text)
        if q is None:
            return True
        new = int(np.argmax(p))
        return int(np.argmax(q)) == new and float(q[new] - np.delete(q, new).max()) >= self.cfg.reader_margin

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

    def set_positions(self, pool: ScoreCache) -> None:
        cfg = self.cfg
        base = self.joint(pool, self.text, summed=True)
        if len(self.word_pos) > 1:
            imp = {i: base - self.joint(pool, render(self.tokens, {i: ()}), summed=True) for i in self.word_pos}
        else:
            imp = {i: 0.0 for i in self.word_pos}
        order = sorted(self.word_pos, key=lambda i: -imp[i])
        if cfg.protect:
            order = [i for i in order if not protected(self.tokens, i)]
        self.order = order
        chosen = order[: cfg.top_positions]
        extra = 0
        task = get_task(cfg.task)
        for i in order[cfg.top_positions :]:
            if extra >= cfg.extra_negation_sites:
                break
            if task.negation_sites and negation_edits(self.tokens, i):
                chosen.append(i)
                extra += 1
        self.positions = chosen
        self.make_candidates(relaxed=False)

    def make_candidates(self, relaxed: bool) -> None:
        cfg = self.cfg
        self.beam = [()]
        self.cands = {}
        keep_sentence = cfg.deletions == "modifiers" and get_task(cfg.task).fluent_cfes
        for i in self.positions:
            c = candidate_edits(self.tokens, i, cfg.task, cfg.max_candidates_per_position, relaxed=relaxed)
            if keep_sentence:
                c = [e for e in c if not breaks_sentence(self.tokens, e)]
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

    def too_far(self, text: str) -> bool:
        cfg = self.cfg
        return (cfg.within_gate and cfg.max_edit_distance is not None
                and gate_too_far(self.text, text, cfg.max_edit_distance, cfg.free_edit_words))

    def fluency(self, state: Sequence[Edit]) -> float:
        return float(np.mean([e.cost for e in state])) if state else 0.0

    def update(self, expanded: list[tuple[tuple[Edit, ...], str]], pool: ScoreCache, depth: int) -> None:
        cfg = self.cfg
        flips = []
        scored = []
        for state, text in expanded:
            p = pool.cache[text]
            obj = self.objective(p)
            fl = cfg.fluency_weight * self.fluency(state)
            teacher_flip = self.flipped(p)
            if teacher_flip and self.reader_agrees(pool, text, p):  # -obj: the flip's margin (or to the target)
                if self.too_far(text):
                    continue  # the gate would reject it, and deeper edits only go farther
                flips.append((abs(-obj - cfg.target_margin) + fl, state, text, p))
            else:  # the beam: where the search goes one edit deeper if a guide rejects every flip
                scored.append((self.joint(pool, text) + fl, state, text, p, teacher_flip))
        if flips:
            self.flips = sorted(flips, key=lambda x: x[0])
            self.choose(self.flips[0])
        scored.sort(key=lambda x: x[0])
        near = [s for s in scored if not s[4]]  # a near-flip partner is one the teacher does not flip
        if not flips and near and (self.near is None or self.objective(near[0][3]) < self.near[0]):
            self.near = (self.objective(near[0][3]), near[0][2], near[0][3])
        self.beam = [s[1] for s in scored[: cfg.beam_size]]

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


def _run_group(jobs: list[OriginalSearch], pool: ScoreCache, cfg: SearchConfig, guide=None) -> None:
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
    if cfg.fallback and (get_task(cfg.task).fallback or guide is not None):
        retry = [j for j in jobs if j.result is None]
        for j in retry:
            j.positions = j.order[: 2 * cfg.top_positions]
            j.make_candidates(relaxed=True)
        if guide is not None:
            guide.add_edits(retry)
        _beam_search([j for j in retry if j.cands], pool, cfg, guide)
    if pool.exact is not None:  # a near-flip's probabilities label its row
        nears = [j for j in jobs if j.result is None and j.near]
        pool.confirm([j.near[1] for j in nears])
        for j in nears:
            j.near = (j.objective(pool.cache[j.near[1]]), j.near[1], pool.cache[j.near[1]])


def _beam_search(active: list[OriginalSearch], pool: ScoreCache, cfg: SearchConfig, guide=None) -> None:
    for depth in range(1, cfg.max_edits + 1):
        if not active:
            break
        expanded = {id(j): j.expand() for j in active}
        pool.score([t for j in active for _, t in expanded[id(j)]])
        if pool.exact is not None:
            pool.confirm([t for j in active for _, t in expanded[id(j)] if j.flipped(pool.cache[t])])
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
            nxt += [j for j in flipped if j.result is None and j.beam]  # every flip too disfluent: deeper
        active = nxt


def search_cfe(
    texts: list[str],
    labels: list[int],
    scorer: Callable[[list[str]], np.ndarray],
    cfg: SearchConfig,
    targets: list[int | None] | None = None,
    progress: bool = False,
    guide=None,
    exact: Callable[[list[str]], np.ndarray] | None = None,
    second: Callable[[list[str]], np.ndarray] | None = None,
) -> list[SearchResult]:
    """Minimal word-edit counterfactuals of ``texts`` for the teacher ``scorer``.

    ``labels`` are the teacher's labels on the originals; ``scorer(list[str]) -> (n, C)``
    probabilities. A flip is ``argmax != label``, or ``argmax == target`` when a target class
    is given (a target equal to the label is ignored). Originals are searched in groups in
    lock-step so teacher calls are full batches of ``cfg.batch_size`` texts. With ``exact``,
    ``scorer`` is a cheaper screen (``search.screen_dtype``): what counts as a flip, and the
    near-flips' probabilities, come from ``exact``. With ``second`` (a reader of another model
    family), a flip counts only where it gives the teacher's new class too, and the beam moves
    toward texts both read as the other class."""
    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    if targets is not None and len(targets) != len(texts):
        raise ValueError("targets and texts differ in length")
    targets = list(targets) if targets is not None else [None] * len(texts)
    jobs = [OriginalSearch(t, y, tg, cfg) for t, y, tg in zip(texts, labels, targets)]
    group = max(8, cfg.batch_size // 2)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="cfe-search", mininterval=1.0)
    for k in range(0, len(jobs), group):
        pool = ScoreCache(scorer, cfg.batch_size, exact, second)  # cache per group keeps memory bounded
        _run_group(jobs[k : k + group], pool, cfg, guide)
        if bar is not None:
            bar.update(len(jobs[k : k + group]))
    if bar is not None:
        bar.close()
    return [j.finish() for j in jobs]

