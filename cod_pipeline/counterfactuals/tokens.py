"""Words of a text and how an edited text is written back: tokens (whitespace, punctuation, word
core), case, "a"/"an" agreement, rendering."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from . import lexicon as lex

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


def case_like(new: str, old: str) -> str:
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
            repl[j] = (case_like(art, t.core) if t.core[:1].isupper() else art,)
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
                words[0] = case_like(words[0], t.core)
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


_LINK_RE = re.compile(r"^(https?|www)\b", re.I)


def _handle(t: Token) -> bool:
    return "@" in t.prefix or "#" in t.prefix or bool(_LINK_RE.match(t.core))


def protected(tokens: Sequence[Token], i: int) -> bool:
    """A name, @mention, #hashtag, number or link: editing one changes who or what a text is about,
    not what it says ("#DeflateGate" -> "#Ph", "Tom Brady" -> "Tom Sent" flip a teacher, no reader).
    A name is a capitalised word inside a sentence (not all capitals: "NOT" is emphasis)."""
    t = tokens[i]
    if _handle(t) or any(ch.isdigit() for ch in t.core):
        return True
    if len(t.core) < 2 or not t.core[0].isupper() or t.core.isupper() or t.prefix[-1:] in tuple("\"'("):
        return False
    if i and tokens[i - 1].suffix[-1:] in tuple(".!?:;"):
        return False
    prev = next((tokens[k] for k in range(i - 1, -1, -1) if tokens[k].is_word and not _handle(tokens[k])), None)
    return prev is not None and prev.suffix[-1:] not in tuple(".!?:;")
