"""Cleaning of raw LLM outputs and token-level minimality helpers.

Pure functions, stdlib only.

``clean_llm_output(raw, original)`` turns the raw text returned by an LLM into a
single candidate sentence, or rejects it with one of the reasons:

* ``"empty"``         – nothing left after cleaning;
* ``"copy_of_input"`` – identical to the input (case/whitespace-insensitive);
* ``"multiline"``     – several sentences/lines that are not "sentence + explanation";
* ``"explanation"``   – the text is (or contains) chatter such as "Here is ...",
  "I changed ...", "As an AI ..." that could not be stripped as a prefix line.
"""

from __future__ import annotations

import difflib
import re

__all__ = [
    "REJECT_EMPTY",
    "REJECT_COPY",
    "REJECT_MULTILINE",
    "REJECT_EXPLANATION",
    "clean_llm_output",
    "word_tokens",
    "normalized_edit_distance",
    "edited_words",
    "diff_markdown",
]

REJECT_EMPTY = "empty"
REJECT_COPY = "copy_of_input"
REJECT_MULTILINE = "multiline"
REJECT_EXPLANATION = "explanation"
REJECT_TOO_LONG = "too_long"


def max_answer_chars(original: str) -> int:
    """The longest answer read as a CFE of ``original``: a minimal edit is about as long as what it
    edits, and a longer answer (a 5 MB reply) is neither stored nor sent back in a feedback prompt."""
    return 4 * len(original or "") + 1000

_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "”": "”", "‘": "’", "`": "`", "«": "»"}
_QUOTE_CHARS = "\"'“”‘’`«»"

_LABEL_RE = re.compile(
    r"^\s*(?:\*\*)?\s*(?:the\s+)?(?:counterfactual(?:\s+sentence)?|output|sentence|flipped(?:\s+sentence)?|"
    r"rewritten(?:\s+sentence)?|answer|modified(?:\s+sentence)?|revised(?:\s+sentence)?|edited(?:\s+sentence)?|result)"
    r"(?:\s*\([^)]*\))?\s*(?:\*\*)?\s*[:\-–—]\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)

# Lines after the first one that are considered explanations (and thus dropped).
_EXPLANATION_LINE_RE = re.compile(
    r"^\s*(?:[\(\[]|explanation|note|this\b|these\b|i\s+(?:changed|replaced|modified|swapped|flipped|"
    r"made|edited|have|just|only|removed|added)|the\s+(?:change|edit|word|only)|changes?\b|edits?\b|"
    r"here\b|by\s+changing|reason|rationale|—|–)",
    re.IGNORECASE,
)

# Phrases that betray chatter rather than a clean sentence.
_CHATTER_RE = re.compile(
    r"\b(?:here\s+is|here's|here\s+are|i\s+changed|i\s+replaced|i\s+modified|i\s+swapped|i\s+have\s+changed|"
    r"i've\s+changed|as\s+an\s+ai|as\s+a\s+language\s+model|i\s+cannot|i\s+can't|sure[,!]|certainly[,!])",
    re.IGNORECASE,
)

# A prefix line that only introduces the answer ("Here is the counterfactual:").
_PREFIX_LINE_RE = re.compile(
    r"^\s*(?:sure|certainly|okay|ok|of\s+course)?[\s,!.]*(?:here\s+is|here's|here\s+are|below\s+is)\b.*[:.]?\s*$",
    re.IGNORECASE,
)


def _strip_quotes(s: str) -> str:
    s = s.strip()
    changed = True
    while changed and len(s) >= 2:
        changed = False
        if s[0] in _QUOTE_PAIRS and s[-1] == _QUOTE_PAIRS[s[0]]:
            s = s[1:-1].strip()
            changed = True
        elif s[0] in "“”" and s[-1] in "“”":
            s = s[1:-1].strip()
            changed = True
    # A lone dangling double quote at either end (e.g. output cut by a stop token).
    if s and s[0] in "\"“”" and sum(s.count(q) for q in "\"“”") == 1:
        s = s[1:].strip()
    elif s and s[-1] in "\"“”" and sum(s.count(q) for q in "\"“”") == 1:
        s = s[:-1].strip()
    return s


def _strip_label(s: str) -> str:
    prev = None
    while prev != s:
        prev = s
        s = _LABEL_RE.sub("", s, count=1).strip()
        s = _strip_quotes(s)
    return s


def _canon(s: str) -> str:
    return " ".join(s.lower().split())


def clean_llm_output(raw: str | None, original: str) -> tuple[str | None, str | None]:
    """Return ``(cleaned_text, None)`` or ``(None, reason)``."""
    if raw is None:
        return None, REJECT_EMPTY
    if len(raw) > max_answer_chars(original):
        return None, REJECT_TOO_LONG
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    text = _strip_quotes(text)
    if not text:
        return None, REJECT_EMPTY

    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    # Drop introductory prefix lines ("Here is the counterfactual:") when a sentence follows.
    while len(lines) > 1 and (_PREFIX_LINE_RE.match(lines[0]) or _LABEL_ONLY_RE.match(lines[0])):
        lines = lines[1:]
    if len(lines) > 1:
        rest = lines[1:]
        if all(_EXPLANATION_LINE_RE.match(ln) or _CHATTER_RE.search(ln) for ln in rest):
            lines = lines[:1]
        else:
            return None, REJECT_MULTILINE

    cand = _strip_label(lines[0])
    cand = _strip_quotes(cand)
    cand = " ".join(cand.split())
    if not cand:
        return None, REJECT_EMPTY
    if _CHATTER_RE.search(cand):
        return None, REJECT_EXPLANATION
    if _canon(cand) == _canon(original):
        return None, REJECT_COPY
    return cand, None


_LABEL_ONLY_RE = re.compile(_LABEL_RE.pattern + r"$", re.IGNORECASE)

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens."""
    return _TOKEN_RE.findall((text or "").lower())


def _levenshtein(a: list[str], b: list[str]) -> int:
    """Levenshtein distance over token lists (rapidfuzz: equal to the textbook DP, ~800× faster)."""
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(a, b)


def edited_words(a: str, b: str) -> int:
    """Token-level Levenshtein distance between ``a`` and ``b``."""
    return _levenshtein(word_tokens(a), word_tokens(b))


def normalized_edit_distance(a: str, b: str) -> float:
    """Token Levenshtein distance divided by the longer token length (>= 1)."""
    ta, tb = word_tokens(a), word_tokens(b)
    return _levenshtein(ta, tb) / max(len(ta), len(tb), 1)


def diff_markdown(a: str, b: str) -> str:
    """``b`` exactly as written, inserted/substituted tokens **bold** and deleted ones ~~struck~~
    (word-level diff against ``a``; the spacing of ``b`` is kept, so "There's" stays "There's")."""
    ma, mb = list(_TOKEN_RE.finditer(a or "")), list(_TOKEN_RE.finditer(b or ""))
    b = b or ""
    sm = difflib.SequenceMatcher(a=[m.group().lower() for m in ma], b=[m.group().lower() for m in mb],
                                 autojunk=False)
    out, pos = [], 0
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if j1 < j2:
            out.append(b[pos:mb[j1].start()])  # the text between tokens, as written
            span = b[mb[j1].start():mb[j2 - 1].end()]
            pos = mb[j2 - 1].end()
        else:
            span = ""
        if op != "equal" and i1 < i2:
            lead = " " if not span and out and out[-1] and not out[-1][-1].isspace() else ""
            out.append(lead + "~~" + (a or "")[ma[i1].start():ma[i2 - 1].end()] + "~~" + (" " if span else ""))
        out.append(span if op == "equal" or not span else "**" + span + "**")
    out.append(b[pos:])
    return "".join(out)
