"""The minimality gate: what counts as a CFE, for the generation loop and the hybrid generator alike."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cod_pipeline.counterfactuals.quality import margin
from cod_pipeline.counterfactuals.textclean import edited_words, normalized_edit_distance


def too_far(original: str, cand: str, max_edit_distance: float, free_edit_words: int = 0) -> bool:
    """A rewrite, not a minimal edit: more than ``max_edit_distance`` of the words changed, unless
    at most ``free_edit_words`` were (one word of a two-word phrase is half of it, and minimal)."""
    return (normalized_edit_distance(original, cand) > max_edit_distance
            and edited_words(original, cand) > free_edit_words)


@dataclass
class Gate:
    """A CFE must flip the teacher *and* be a minimal edit: rewrites are not CFEs."""
    max_edit_distance: float = 0.4
    reject_prompt_examples: bool = True
    min_margin: float = 0.0  # top-1 minus top-2 teacher probability on the CFE; 0 = any flip
    free_edit_words: int = 0  # an edit of at most this many words passes the distance limit (too_far)

    def reason(self, original: str, cand: str | None, probs, label: int, target: int | None,
               examples=(), seen=()) -> str | None:
        if cand is None:
            return "no_candidate"
        pred = int(np.argmax(probs))
        if (target is None and pred == label) or (target is not None and pred != target):
            return "no_flip"
        if too_far(original, cand, self.max_edit_distance, self.free_edit_words):
            return "too_far"
        if margin(probs) < self.min_margin:
            return "weak_flip"
        canon = cand.strip().lower()
        if self.reject_prompt_examples and canon in {e.strip().lower() for e in examples}:
            return "prompt_example"
        if canon in seen:
            return "duplicate"
        return None
