"""The language model's two hooks into the minimal-edit search, for any task.

- ``add_edits``: at the positions the teacher cares most about (occlusion), words that the
  LM finds likely in the *target* class's context ("a negative review: …") and unlikely in
  the original class's, as substitutions and insertions. The class descriptions come from
  ``dataset.label_template``, so nothing here knows what the task is.
- ``rerank``: among the flips with the fewest edits, the one whose LM log-probability falls
  least below the original's (plus the search's own margin key).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cod_pipeline.counterfactuals.edits import Edit
from cod_pipeline.counterfactuals.lexicon import FUNCTION_WORDS, WH_WORDS
from cod_pipeline.counterfactuals.lm import LanguageModel, WordSlot
from cod_pipeline.counterfactuals.tokens import case_like

CONTENT = frozenset({"noun", "verb", "adj", "adv"})
SWAPPABLE = CONTENT | {"wh"}  # "Where" -> "When" changes what a question asks; "Where" -> "Numbers" does not
MODIFIERS = frozenset({"adj", "adv"})
CLOSED = FUNCTION_WORDS | WH_WORDS  # words a kept frame never swaps in or out


def _core_starts(tokens) -> list[int]:
    starts, pos = [], 0
    for t in tokens:
        starts.append(pos + len(t.ws) + len(t.prefix))
        pos += len(t.ws) + len(t.prefix) + len(t.core) + len(t.suffix)
    return starts


class LMGuide:
    def __init__(self, lm: LanguageModel, descriptions: Sequence[str], proposals: int = 4, insertions: int = 2,
                 contrast: float = 1.0, rank_top: int = 8, weight: float = 1.0, max_drop: float | None = None,
                 same_pos: bool = False, content_words: bool = False, zero_shot: float | None = None,
                 class_words: float | None = None, keep_frame: bool = False, fluent_cfes: bool = True):
        self.lm, self.descriptions = lm, list(descriptions)
        self.proposals, self.insertions, self.contrast = int(proposals), int(insertions), float(contrast)
        self.rank_top, self.weight = int(rank_top), float(weight)
        # a flip that reads this much worse than its original (nats/token) is no CFE; a task whose
        # label *is* fluency (acceptability) opts out through its registry entry
        self.max_drop = None if max_drop is None or not fluent_cfes else float(max_drop)
        # a substitution keeps the word's part of speech ("Three" -> "If" is a teacher shortcut,
        # not a counterfactual); where fluency is the label, breaking it is the edit
        self.same_pos = bool(same_pos) and fluent_cfes
        # the LM rewrites content words only (a noun for a noun, …) and inserts only modifiers:
        # swapping "Where" for "Numbers" or inserting "Thanks" moves a teacher, not the meaning;
        # function-word edits (negation) come from the task's own edit family
        self.content_words = bool(content_words) and fluent_cfes
        # the LM as a zero-shot reader: a flip counts only where the edit raises the LM's log-odds
        # of the new class's description against the original's by this much (nats; null: off)
        self.zero_shot = None if zero_shot is None else float(zero_shot)
        # the sentence's frame stays: no LM word replaces a function word or becomes one, and the
        # first word is replaced only within its word class ("They" -> "Yes", "the" -> "certain",
        # "A solid" -> "Too poor" are the LM's class cues in places no sentence has them)
        self.keep_frame = bool(keep_frame) and fluent_cfes
        # the generator's own reader ranks the LM's words too: a word that reader gives the target
        # class ("dull" in a review) rises by this weight × its log-odds, one it does not ("Too") sinks
        self.class_words = None if class_words is None else float(class_words)
        self.word_score = None  # (words, target, source) -> reader log-odds per word; set once the reader is fitted
        # the class words themselves ("negative") are what the context makes likely, not an edit
        self.banned = {w.lower() for d in self.descriptions for w in d.split()}
        self._words: set[str] | None = None

    def is_word(self, w: str) -> bool:
        """A whole English word, not the first piece of a longer one ("Mis" of "Misses")."""
        if self._words is None:
            from cod_pipeline.counterfactuals import lexicon as lex

            self._words = set(lex.wordnet_index()) | set(lex.frequent_words(5000))
        return not self._words or w.lower() in self._words

    @staticmethod
    def _pos(word: str) -> str | None:
        from cod_pipeline.counterfactuals.lexicon import guess_pos

        return guess_pos(word)

    @staticmethod
    def _class(word: str) -> str | None:
        from cod_pipeline.counterfactuals.lexicon import word_class

        return word_class(word)

    def _slot(self, cls: int, text: str, start: int) -> WordSlot:
        """The word starting at ``start`` of ``text``, inside the class's context ("a negative review: …")."""
        head = f"{self.descriptions[cls]}: "
        return WordSlot(head + text, len(head) + start)

    def add_edits(self, jobs) -> None:
        """Extend each job's per-position candidate edits with LM proposals."""
        plan = []  # (job, position, core start, target class, source class)
        for j in jobs:
            target = j.target if j.target is not None else int(np.argsort(j.orig_probs)[-2])
            starts = _core_starts(j.tokens)
            plan += [(j, i, starts[i], target, j.label) for i in j.positions if j.tokens[i].is_word]
        if not plan:
            return
        slots = []
        for j, _, start, target, source in plan:
            slots += [self._slot(cls, j.text, start) for cls in (target, source)]
        dists = self.lm.next_words(slots)
        for n, (j, i, _, _, _) in enumerate(plan):
            core = j.tokens[i].core
            have = j.cands.setdefault(i, [])
            known = {e.label for e in have}
            filtered = self.same_pos or self.content_words  # the class filter thins the LM's list
            pool = 3 * max(self.proposals, self.insertions) * (3 if filtered else 1)
            words = self._ranked_words(dists[2 * n], dists[2 * n + 1], pool, core, plan[n][3], plan[n][4])
            if self.content_words:  # a noun for a noun, a question word for a question word
                cls = self._class(core)
                subs = [w for w in words if self._class(w) == cls] if cls in SWAPPABLE else []
            else:
                pos = self._pos(core) if self.same_pos else None
                subs = [w for w in words if not self.same_pos or self._pos(w) == pos]
            inserts = [w for w in words if not self.content_words or self._class(w) in MODIFIERS]
            if self.keep_frame:
                subs = self._framed(core, subs, first=i == j.word_pos[0])
                inserts = [w for w in inserts if w.lower() not in FUNCTION_WORDS]
            for w in subs[:self.proposals]:
                new = case_like(w, core)
                label = f"{core} -> {new}"
                if label not in known:
                    have.append(Edit(((i, (new,)),), label, 0.3))
            if i != j.word_pos[0]:  # no insertion before the first word: its case would need moving
                for w in inserts[:self.insertions]:
                    if f"+{w}" not in known and w.lower() != core.lower():
                        have.append(Edit(((i, (w, core)),), f"+{w}", 0.4))

    def _framed(self, core: str, subs: list[str], first: bool) -> list[str]:
        if core.lower() in CLOSED:
            return []
        subs = [w for w in subs if w.lower() not in CLOSED]
        return [w for w in subs if self._class(w) == self._class(core)] if first else subs

    def _ranked_words(self, dist, other, pool: int, core: str, target: int, source: int) -> list[str]:
        """The LM's words for a slot, best first; with ``class_words``, reranked by the reader too."""
        ranked = self.class_words is not None and self.word_score is not None
        scored = [(w, sc) for w, sc in self.lm.scored_words(dist, other, pool * (2 if ranked else 1), self.contrast,
                                                            exclude={core.lower(), *self.banned}) if self.is_word(w)]
        if ranked and scored:
            bonus = self.word_score([w for w, _ in scored], target, source)
            scored = sorted(((w, sc + self.class_words * float(b)) for (w, sc), b in zip(scored, bonus)),
                            key=lambda x: -x[1])
        return [w for w, _ in scored]

    def _odds(self, todo) -> list[float]:
        """Per flip, how much the edit raised the LM's log-odds of the flip's class description
        against the original class's: [lp(cfe | new) − lp(cfe | old)] − [lp(x | new) − lp(x | old)]."""
        quads = [[(t, f"{self.descriptions[c]}: ") for t in (f[2], j.text) for c in (int(np.argmax(f[3])), j.label)]
                 for j, flips in todo for f in flips]
        pairs = list(dict.fromkeys(p for q in quads for p in q))  # an original is scored once per class
        lp = dict(zip(pairs, self.lm.class_logprob([t for t, _ in pairs], [c for _, c in pairs])))
        return [(lp[a] - lp[b]) - (lp[c] - lp[d]) for a, b, c, d in quads]

    def rerank(self, jobs) -> None:
        """Re-choose each job's flip among its ``rank_top`` best by fluency drop + search key;
        with ``max_drop``, a job whose flips all read too much worse gets none (it searches on)."""
        todo = [(j, j.flips[:self.rank_top]) for j in jobs if j.flips]
        texts = [t for j, flips in todo for t in [j.text] + [f[2] for f in flips]]
        scores = iter(self.lm.logprob(texts))
        odds = iter(self._odds(todo) if self.zero_shot is not None else [])
        for j, flips in todo:
            base = next(scores)
            lps = [next(scores) for _ in flips]
            moved = [next(odds) for _ in flips] if self.zero_shot is not None else None
            ok = [k for k in range(len(flips)) if (self.max_drop is None or base - lps[k] <= self.max_drop)
                  and (moved is None or moved[k] >= self.zero_shot)]
            if not ok:
                j.result, j.flips = None, []
                continue
            best = min(ok, key=lambda k: flips[k][0] + self.weight * max(0.0, base - lps[k]))
            j.choose(flips[best])
            j.result.lm_logprob, j.result.lm_logprob_original = float(lps[best]), float(base)


__all__ = ["LMGuide"]
