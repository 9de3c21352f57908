"""lexicon.py's hand-written WordNet parsing vs nltk's WordNet reader, on the same embedded files
(``lexicon.wordnet_dir()``: $COD_WORDNET_DIR or Debian's /usr/share/wordnet) and the words
``lexicon.frequent_words(5000)[:2000]``: cold load time (a fresh subprocess each), time per
lookup, and agreement of POS guesses, antonyms and base forms (lemmas / morphy).

nltk cannot open the Debian directory as it is (the attempts and their errors go into the md);
it reads a private copy of the same files plus WordNet 3.0's standard ``lexnames`` list.

    python benchmarks/bench_lexicon.py [--words 2000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from common import md_table, write

# WordNet 3.0's lexicographer file names (``lexnames`` of the Princeton distribution): number,
# name, POS (1 noun, 2 verb, 3 adj, 4 adv). Debian's wordnet-base leaves the file out; nltk's
# reader needs it (Synset.lexname). check_lexnames() tests it against every synset's lex_filenum.
LEXNAMES = """adj.all 3|adj.pert 3|adv.all 4|noun.Tops 1|noun.act 1|noun.animal 1|noun.artifact 1|noun.attribute 1|
noun.body 1|noun.cognition 1|noun.communication 1|noun.event 1|noun.feeling 1|noun.food 1|noun.group 1|
noun.location 1|noun.motive 1|noun.object 1|noun.person 1|noun.phenomenon 1|noun.plant 1|noun.possession 1|
noun.process 1|noun.quantity 1|noun.relation 1|noun.shape 1|noun.state 1|noun.substance 1|noun.time 1|
verb.body 2|verb.change 2|verb.cognition 2|verb.communication 2|verb.competition 2|verb.consumption 2|
verb.contact 2|verb.creation 2|verb.emotion 2|verb.motion 2|verb.perception 2|verb.possession 2|verb.social 2|
verb.stative 2|verb.weather 2|adj.ppl 3""".replace("\n", "").split("|")
NLTK_FILES = ("data.{}", "index.{}", "{}.exc")  # per POS; plus cntlist.rev (Lemma.count)
FILE_POS = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
NLTK_POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}  # s = satellite adjective
LETTER = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
ALPHA = re.compile(r"^[a-z]+$")  # lexicon keeps single alphabetic antonyms only: so do both sides here


# ----------------------------------------------------------------------------- loading nltk

def nltk_copy(root: Path, dest: Path) -> Path:
    """``dest`` holding copies of the WordNet files nltk reads, plus ``lexnames``; authorised for nltk."""
    for pos in FILE_POS:
        for pattern in NLTK_FILES:
            shutil.copyfile(root / pattern.format(pos), dest / pattern.format(pos))
    shutil.copyfile(root / "cntlist.rev", dest / "cntlist.rev")
    return authorise(dest)


def authorise(dest: Path) -> Path:
    """Write ``lexnames`` into ``dest`` and add ``dest`` to nltk's data paths (nltk 3.10 opens
    corpora only under those)."""
    import nltk

    (dest / "lexnames").write_text("".join(f"{i:02d} {x}\n" for i, x in enumerate(LEXNAMES)))
    nltk.data.path.insert(0, str(dest))
    return dest


def nltk_reader(root: Path, offline: bool = True):
    """nltk's reader on ``root``. ``offline``: without the OMW sense-key map its constructor builds
    (``map_wn``: it opens nltk's own downloaded ``wordnet`` corpus and ``index.sense``, which
    wordnet-base lacks); that map serves only multilingual lookups, which are not used here."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class Offline(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available" (no OMW: not needed)
        return (Offline if offline else WordNetCorpusReader)(str(root), None)


def direct_attempts(root: Path) -> list[dict]:
    """Every way of pointing nltk at the embedded files themselves, and what it answers."""
    import nltk

    def attempt(how: str, fn) -> dict:
        try:
            r = fn()
            return {"attempt": how, "result": f"works ({len(r._lemma_pos_offset_map)} lemmas)"}
        except Exception as e:  # noqa: BLE001 - the error text is the finding
            why = " ".join(str(e).replace("*", " ").split())
            return {"attempt": how, "result": f"`{type(e).__name__}: {why[:150]}`"}

    tmp: list[Path] = []

    def overlay(link) -> Path:
        tmp.append(Path(tempfile.mkdtemp(prefix="wn_overlay_")))  # private (0700): nltk accepts it as a root
        for f in root.iterdir():
            if f.is_file():
                link(f, tmp[-1] / f.name)
        return authorise(tmp[-1])

    out = [attempt(f"`WordNetCorpusReader('{root}', None)`", lambda: nltk_reader(root, offline=False))]
    nltk.data.path.append(str(root))
    out.append(attempt(f"same, after `nltk.data.path.append('{root}')`", lambda: nltk_reader(root, offline=False)))
    for how, link in (("symbolic links to", lambda f, t: t.symlink_to(f)), ("hard links to", os.link),
                      ("copies of", shutil.copyfile)):
        out.append(attempt(f"a private dir of {how} the files, plus `lexnames`",
                           lambda link=link: nltk_reader(overlay(link), offline=False)))
    out.append(attempt("copies plus `lexnames`, `map_wn` (OMW sense-key map) overridden to return None",
                       lambda: nltk_reader(overlay(shutil.copyfile))))
    for d in tmp:
        shutil.rmtree(d, ignore_errors=True)
    return out


def check_lexnames(root: Path) -> str:
    """Every synset's lex_filenum names a lexnames entry of its own POS (the list fits these files)."""
    bad, n = 0, 0
    for pos, num in FILE_POS.items():
        with open(root / f"data.{pos}", "rb") as fh:
            for line in fh:
                if line.startswith(b"  "):
                    continue
                i = int(line.split(b" ", 2)[1])
                n += 1
                bad += i >= len(LEXNAMES) or int(LEXNAMES[i].split()[1]) != num
    return f"{n} synsets, {bad} with a lex_filenum outside their POS's lexnames"


# ----------------------------------------------------------------------------- lookups

def nltk_bases(r, w: str) -> set[tuple[str, str]]:
    """``(base, pos)`` of every analysis nltk's morphy finds (``_morphy``: what ``synsets()`` uses)."""
    return {(b, pos) for pos, p in LETTER.items() for b in r._morphy(w, p)}


def nltk_pos(r, w: str) -> str | None:
    """The POS whose senses of ``w`` (through morphy) carry the most SemCor lemma counts; ties: more senses."""
    score: dict[str, list[int]] = {}
    for pos, p in LETTER.items():
        bases = set(r._morphy(w, p))
        for ss in r.synsets(w, p):
            s = score.setdefault(pos, [0, 0])
            s[0] += sum(lem.count() for lem in ss.lemmas() if lem.name().lower() in bases)
            s[1] += 1
    return max(score, key=lambda pos: tuple(score[pos])) if score else None


def nltk_antonyms(r, w: str) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for lem in r.lemmas(w):  # lemmas named exactly w, as lexicon keys its antonyms
        for a in lem.antonyms():
            t = a.name().lower()
            if ALPHA.match(t) and t != w:
                out.setdefault(NLTK_POS[lem.synset().pos()], set()).add(t)
    return {p: frozenset(s) for p, s in out.items()}


def lex_antonyms(lexicon, w: str) -> dict[str, frozenset[str]]:
    return dict(lexicon.wordnet_antonyms().get(w, {}))


def lex_bases(lexicon, w: str) -> set[tuple[str, str]]:
    return {(lem, pos) for lem, pos, _ in lexicon.lemmas(w)}


# ----------------------------------------------------------------------------- cold start (child)

def cold(which: str, words: list[str], root: Path) -> dict:
    """Run in a fresh interpreter: import, load everything the lookups need, look every word up."""
    t0, c0 = time.perf_counter(), time.process_time()
    marks = {}

    def mark(name):
        marks[name] = (time.perf_counter() - t0, time.process_time() - c0)

    if which == "lexicon":
        from cod_pipeline.counterfactuals import lexicon

        mark("import")
        lexicon.wordnet_index(), lexicon.wordnet_exceptions(), lexicon.wordnet_antonyms()
        mark("load")
        for w in words:
            lexicon.guess_pos(w), lex_antonyms(lexicon, w), lex_bases(lexicon, w)
        mark("lookups")
    else:
        import nltk.corpus.reader.wordnet  # noqa: F401

        mark("import")
        tmp = Path(tempfile.mkdtemp(prefix="wn_nltk_"))
        try:
            nltk_copy(root, tmp)
            mark("copy")
            r = nltk_reader(tmp)
            mark("load")
            for w in words:
                nltk_pos(r, w), nltk_antonyms(r, w), nltk_bases(r, w)
            mark("lookups")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return marks


def run_cold(which: str, words: list[str], root: Path, repeats: int) -> list[dict]:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, __file__, "--cold", which], input=json.dumps({"words": words, "root": str(root)}), text=True,
                           capture_output=True)
        if p.returncode:
            sys.exit(f"error: the cold {which} run failed:\n{p.stderr[-3000:]}")
        marks = json.loads(p.stdout.strip().splitlines()[-1])
        marks["process"] = [time.perf_counter() - t0, None]  # interpreter start to exit, wall
        runs.append(marks)
    return runs


# ----------------------------------------------------------------------------- report (parent)

def timed(fn, words: list[str]) -> tuple[float, float]:
    """µs per word, wall and CPU, of ``fn`` over ``words``."""
    t0, c0 = time.perf_counter(), time.process_time()
    for w in words:
        fn(w)
    n = len(words)
    return 1e6 * (time.perf_counter() - t0) / n, 1e6 * (time.process_time() - c0) / n


def fmt_ants(d: dict) -> str:
    return "; ".join(f"{p}: {', '.join(sorted(s))}" for p, s in sorted(d.items())) or "—"


def fmt_bases(s: set) -> str:
    return ", ".join(f"{b}/{p}" for b, p in sorted(s)) or "—"


def pct(a: int, n: int) -> str:
    return f"{a}/{n} ({100 * a / n:.1f}%)" if n else "—"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=2000, help="the first N of lexicon.frequent_words(5000)")
    ap.add_argument("--repeats", type=int, default=3, help="cold-start subprocesses per library (median)")
    ap.add_argument("--examples", type=int, default=6, help="disagreements shown per comparison")
    ap.add_argument("--cold", choices=["lexicon", "nltk"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cold:
        job = json.loads(sys.stdin.read())
        print(json.dumps(cold(args.cold, job["words"], Path(job["root"]))))
        return

    try:
        import nltk
    except ImportError:
        sys.exit("error: nltk is not installed: pip install -e '.[bench]' (or make bench-lexicon)")
    from cod_pipeline.counterfactuals import lexicon

    root = lexicon.wordnet_dir()
    if not (root / "index.noun").exists():
        sys.exit(f"error: no WordNet files in {root} (apt-get install wordnet-base, or set {lexicon.WORDNET_ENV})")
    words = list(lexicon.frequent_words(5000)[: args.words])
    attempts = direct_attempts(root)
    lexcheck = check_lexnames(root)

    # (1) cold start, fresh interpreters
    cold_runs = {w: run_cold(w, words, root, args.repeats) for w in ("lexicon", "nltk")}

    def med(which, stage, i=0):
        runs = cold_runs[which]
        return statistics.median(r[stage][i] for r in runs if stage in r and r[stage][i] is not None)

    def step(which, stage, prev):
        return (statistics.median(r[stage][0] - r[prev][0] for r in cold_runs[which]),
                statistics.median(r[stage][1] - r[prev][1] for r in cold_runs[which]))

    cold_rows = []
    for which in ("lexicon", "nltk"):
        load_from = "copy" if which == "nltk" else "import"
        row = {"library": which if which == "lexicon" else f"nltk {nltk.__version__}",
               "import, s": f"{med(which, 'import'):.3f}"}
        if which == "nltk":
            w_, c_ = step(which, "copy", "import")
            row["copy files, s"] = f"{w_:.2f} ({c_:.2f} CPU)"
        else:
            row["copy files, s"] = "—"
        w_, c_ = step(which, "load", load_from)
        row["load tables, s"] = f"{w_:.2f} ({c_:.2f} CPU)"
        row["import → loaded, s"] = f"{med(which, 'load'):.2f} ({med(which, 'load', 1):.2f} CPU)"
        w_, c_ = step(which, "lookups", "load")
        row[f"{len(words)} words × 3 lookups, s"] = f"{w_:.2f} ({c_:.2f} CPU)"
        row["whole process (wall), s"] = f"{med(which, 'process'):.2f}"
        cold_rows.append(row)

    # (2) per lookup, warm process: both loaded here
    tmp = Path(tempfile.mkdtemp(prefix="wn_nltk_"))
    try:
        r = nltk_reader(nltk_copy(root, tmp))
        lexicon.wordnet_index(), lexicon.wordnet_exceptions(), lexicon.wordnet_antonyms()
        lexicon._guess.cache_clear()  # guess_pos is memoised: the first pass is the real cost
        ops = [("POS guess", lexicon.guess_pos, lambda w: nltk_pos(r, w)),
               ("antonyms", lambda w: lex_antonyms(lexicon, w), lambda w: nltk_antonyms(r, w)),
               ("base forms", lambda w: lex_bases(lexicon, w), lambda w: nltk_bases(r, w))]
        look_rows = []
        for name, lex_fn, nltk_fn in ops:  # nltk's synset cache fills during the POS pass
            row = {"lookup": name}
            for lib, fn in (("lexicon", lex_fn), ("nltk", nltk_fn)):
                first, again = timed(fn, words), timed(fn, words)
                row[f"{lib} µs/word, 1st pass"] = f"{first[0]:.1f} ({first[1]:.1f} CPU)"
                row[f"{lib} µs/word, 2nd pass"] = f"{again[0]:.1f} ({again[1]:.1f} CPU)"
            look_rows.append(row)

        # (3) agreement
        pos_n = {k: 0 for k in ("func", "agree", "differ", "wordnet, nltk none", "suffix, nltk none", "suffix, nltk has",
                                "none, nltk none", "none, nltk has")}
        ant_same = ant_any = ant_pairs_lex = ant_pairs_nltk = ant_pairs_common = 0
        base_same = base_any = base_lex_more = base_nltk_more = base_other = 0
        chosen_same = chosen_in = chosen_n = 0
        ex = {k: [] for k in ("pos", "ant", "base", "chosen")}
        for w in words:
            lp, ln = lexicon.guess_pos(w), nltk_pos(r, w)
            lb, nb = lex_bases(lexicon, w), nltk_bases(r, w)
            if lp == "func":
                key = "func"
            elif lb:  # lexicon's POS comes from its WordNet analyses
                key = ("agree" if lp == ln else "differ") if ln else "wordnet, nltk none"
            else:  # no analysis: lexicon guesses from the suffix, or says None
                key = ("suffix" if lp else "none") + (", nltk has" if ln else ", nltk none")
            pos_n[key] += 1
            if key not in ("func", "agree", "suffix, nltk none", "none, nltk none"):
                ex["pos"].append((w, lp if lb else f"{lp} (suffix guess)" if lp else "None", ln))
            la, na = lex_antonyms(lexicon, w), nltk_antonyms(r, w)
            if la or na:
                ant_any += 1
                ant_same += la == na
                pl = {(p, t) for p, s in la.items() for t in s}
                pn = {(p, t) for p, s in na.items() for t in s}
                ant_pairs_lex, ant_pairs_nltk, ant_pairs_common = (ant_pairs_lex + len(pl), ant_pairs_nltk + len(pn),
                                                                   ant_pairs_common + len(pl & pn))
                if la != na:
                    ex["ant"].append((w, fmt_ants(la), fmt_ants(na)))
            if lb or nb:
                base_any += 1
                if lb == nb:
                    base_same += 1
                else:
                    base_lex_more += lb > nb
                    base_nltk_more += nb > lb
                    base_other += not (lb > nb or nb > lb)
                    ex["base"].append((w, fmt_bases(lb), fmt_bases(nb)))
            pos, lemma, _ = lexicon.word_form(w)
            if lb and pos in LETTER:
                chosen_n += 1
                m = r.morphy(w, LETTER[pos])
                chosen_same += m == lemma
                chosen_in += (lemma, pos) in nb
                if m != lemma:
                    ex["chosen"].append((w, f"{lemma} ({pos})", str(m)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n_open = pos_n["agree"] + pos_n["differ"]
    agree_rows = [
        {"comparison": "POS: lexicon.guess_pos (from its WordNet analyses) vs nltk POS with most lemma counts",
         "agree": pct(pos_n["agree"], n_open)},
        {"comparison": "POS: lexicon has WordNet analyses, nltk finds no synset", "agree": pos_n["wordnet, nltk none"]},
        {"comparison": "POS: lexicon says `func` (its closed-class list; nltk has no such class)",
         "agree": pos_n["func"]},
        {"comparison": "POS: lexicon has no WordNet analysis, guesses by suffix; nltk finds none / finds synsets",
         "agree": f"{pos_n['suffix, nltk none']} / {pos_n['suffix, nltk has']}"},
        {"comparison": "POS: lexicon None; nltk finds none / finds synsets",
         "agree": f"{pos_n['none, nltk none']} / {pos_n['none, nltk has']}"},
        {"comparison": "antonyms: `wordnet_antonyms()[w]` == nltk `Lemma.antonyms()` by POS (words with any)",
         "agree": pct(ant_same, ant_any)},
        {"comparison": "antonym (POS, word) pairs: lexicon / nltk / both",
         "agree": f"{ant_pairs_lex} / {ant_pairs_nltk} / {ant_pairs_common}"},
        {"comparison": "base forms: `lemmas()` {(lemma, POS)} == nltk morphy analyses (words with any)",
         "agree": pct(base_same, base_any)},
        {"comparison": "base forms differing: lexicon finds more / nltk finds more / neither contains the other",
         "agree": f"{base_lex_more} / {base_nltk_more} / {base_other}"},
        {"comparison": "chosen lemma: `word_form()` lemma == nltk `morphy(w, that POS)` (its first analysis)",
         "agree": pct(chosen_same, chosen_n)},
        {"comparison": "chosen lemma: `word_form()` (lemma, POS) is one of nltk's morphy analyses",
         "agree": pct(chosen_in, chosen_n)},
    ]

    def examples(key, head):
        rows = [dict(zip(("word", *head), e)) for e in ex[key][: args.examples]]
        return md_table(rows) if rows else "none"

    body = f"""WordNet files: `{root}` (`lexicon.wordnet_dir()`); words: the first {len(words)} of
`lexicon.frequent_words(5000)`; nltk {nltk.__version__}. Load average at the start:
{", ".join(f"{x:.2f}" for x in os.getloadavg())} ({os.cpu_count()} cores; times are wall, CPU in brackets).

## Can nltk read the embedded files?

{md_table(attempts)}

So nltk reads a private copy of `data.*`, `index.*`, `*.exc` and `cntlist.rev` (copied afresh in each
cold start; the copy is timed) plus WordNet 3.0's standard `lexnames` list, which fits these files:
{lexcheck}.

## Cold start (fresh interpreter; median of {args.repeats})

lexicon loads its tables up front (index, exceptions, every antonym pointer); nltk reads the index,
the exceptions and data.adj (satellite offsets) at start, and the data files lazily, per synset.

{md_table(cold_rows)}

## Per lookup (one warm process, both loaded)

lexicon's `guess_pos` is memoised (its cache is cleared first); nltk caches synsets, filled in the
POS pass, so its later passes start warm.

{md_table(look_rows)}

## Agreement on {len(words)} words

nltk POS: over the 4 POS, the one whose synsets of the word (via `morphy`) carry the most SemCor lemma
counts (`Lemma.count()`, ties: more synsets); lexicon weighs index.* tagged-sense counts instead.
Antonyms on both sides: single alphabetic words other than the word itself.

{md_table(agree_rows)}

### POS disagreements (lexicon vs nltk)

{examples("pos", ("lexicon", "nltk"))}

### Antonym disagreements

{examples("ant", ("lexicon", "nltk"))}

### Base-form disagreements (lemma/POS)

{examples("base", ("lexicon.lemmas", "nltk morphy"))}

### Chosen-lemma disagreements

{examples("chosen", ("lexicon.word_form", "nltk morphy(w, pos)"))}
"""
    write("bench_lexicon", "lexicon.py vs nltk's WordNet reader", body)


if __name__ == "__main__":
    main()
