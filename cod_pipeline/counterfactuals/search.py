"""The offline CFE search, one import away: teacher-guided minimal word edits.

- ``tokens``: tokenisation and rendering of edited texts;
- ``edits``: single word edits and their fluency costs (per-task families);
- ``tasks``: which edits (and prompts) a task uses, with a generic entry for any other task;
- ``beam``: occlusion ranking and beam search over edit sets (``search_cfe``);
- ``random_edit``: the unvalidated random-edit control (``random_edits``).
"""
from __future__ import annotations

from .beam import OriginalSearch, ScoreCache, SearchConfig, SearchResult, search_cfe
from .edits import Edit
from .random_edit import random_edits
from .tasks import candidate_edits, neighbours
from .tokens import Token, case_like, render, tokenize

__all__ = [
    "SearchConfig",
    "SearchResult",
    "OriginalSearch",
    "ScoreCache",
    "Edit",
    "Token",
    "tokenize",
    "render",
    "case_like",
    "candidate_edits",
    "neighbours",
    "search_cfe",
    "random_edits",
]
