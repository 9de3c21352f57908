"""The language-model-guided CFE search, and the CoD protocol without selection bias."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cod_pipeline import ConfigError
from tests.conftest import CONF, SENTIMENT_TEACHER, make_cfg

# the values the dataset configs document: each shipped dataset's, and the ones dataset=local's comment names
TASKS = tuple(sorted({OmegaConf.load(f).get("task") for f in Path(CONF, "dataset").glob("*.yaml")} - {None} | {"topic"}))


def write_topic_tsv(path: Path, n: int = 600) -> Path:
    """A toy two-topic task (sports vs cooking) that no sentiment lexicon can flip."""
    rng = random.Random(0)
    sports = ["team", "match", "goal", "player", "coach", "league", "stadium", "referee"]
    food = ["soup", "recipe", "oven", "chef", "kitchen", "pasta", "bread", "sauce"]
    lines = ["sentence\tlabel"]
    for i in range(n):
        y = i % 2
        a, b = rng.sample(food if y else sports, 2)
        lines.append(f"the {a} and the {b} were there on day {i} .\t{y}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lm_search_flips_a_teacher_on_a_non_sentiment_task(tmp_path):
    from cod_pipeline.pipeline import run

    path = write_topic_tsv(tmp_path / "topic.tsv")
    cfg = make_cfg(tmp_path, ["model=tiny", "logger=none", "trainer.enable_progress_bar=false", "compare=[]",
                              "dataset=local", f"dataset.source.path={path}", "dataset.task=topic",
                              "dataset.label_names=[sports,cooking]", "dataset.label_template='a text about {}'",
                              "dataset.val_size=100", "dataset.test_size=200", *SENTIMENT_TEACHER,
                              "stage=cfe", "k=16", "cfe=lm_search"])
    q = run(cfg)["cfe"]
    assert q["generator"] == "lm_search" and q["n_originals"] == 8  # exactly the draw's first k/2
    assert q["validity"] >= 0.75, q
    assert q["edited_words_mean"] <= 3
    assert q["fluency_drop_mean"] is not None  # ranked by the LM
    from cod_pipeline.counterfactuals.store import CFEStore

    recs = [r for r in CFEStore(Path(cfg.paths.cache_dir) / "cfe.sqlite").all(dataset="local") if r["valid"]]
    assert all(r["cfe_label"] != r["label"] for r in recs)  # every CFE flips the teacher
    # a topic flip needs a word of the other topic: substitutions only the LM can propose here
    assert any("->" in e for r in recs for e in (r.get("edits") or [])), [r["edits"] for r in recs]


def _rows(cfg):
    from cod_pipeline.counterfactuals.pairing import cod_rows
    from cod_pipeline.pipeline import prepare
    from cod_pipeline.teacher import ensure_teacher

    splits, sampler = prepare(cfg)
    return cod_rows(cfg, splits, sampler, ensure_teacher(cfg, splits)), splits, sampler


def test_cod_originals_are_the_kd_prefix(sentiment_cfg):
    (rows, q), splits, sampler = _rows(sentiment_cfg("augment=cod", "cfe=search", "k=8"))
    ids = lambda idx: set(splits.train.iloc[list(idx)]["id"])  # noqa: E731
    originals = {r["id"] for r in rows if not r["is_cfe"]}
    assert ids(sampler.draw(4)) <= originals <= ids(sampler.draw(8))
    assert len(rows) == 8 and len(originals) - 4 == q["fill_originals"]  # near-flip partners are no originals
    assert q["unpaired_originals"] == q["fill_originals"] + q["near_flips"]


def test_failed_cfes_fill_from_kds_own_draw(sentiment_cfg):
    """No CFE passes a gate of 1% edits: every original stays, unpaired, and the budget is
    filled from KD's draw, so CoD's training set is exactly KD's."""
    (rows, q), splits, sampler = _rows(sentiment_cfg("augment=cod", "augment.on_failure=fill", "cfe=search", "k=8",
                                                     "cfe.max_edit_distance=0.01"))
    assert q["unpaired_originals"] == 4 and q["fill_originals"] == 4
    assert {r["id"] for r in rows} == set(splits.train.iloc[list(sampler.draw(8))]["id"])
    assert not any(r["is_cfe"] for r in rows)


def test_near_flip_pairs_failures_with_their_closest_candidate(sentiment_cfg):
    """A margin no edit reaches: the search keeps its closest non-flip as the partner."""
    (rows, q), _, _ = _rows(sentiment_cfg("augment=cod", "augment.on_failure=near_flip", "cfe=search", "k=8",
                                          "cfe.min_margin=0.999", "augment.cfe_loss=kl"))
    partners = [r for r in rows if r["is_cfe"]]
    assert q["near_flips"] == len(partners) > 0
    assert all(r["ce_weight"] == 0.0 for r in partners)  # cfe_loss=kl: no hard label on the partner


def test_kl_only_cfe_loss_ignores_the_hard_label():
    import torch

    from cod_pipeline.losses import distillation_loss

    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    full = distillation_loss(logits, labels)["ce"]
    first = distillation_loss(logits, labels, ce_weight=torch.tensor([1.0, 0.0]))["ce"]
    assert torch.isclose(first, distillation_loss(logits[:1], labels[:1])["ce"]) and first < full


@pytest.mark.parametrize("task", TASKS)
def test_every_task_builds_with_every_generator(task, tmp_path):
    """Each documented task value works with each generator, or fails with one ConfigError line."""
    from cod_pipeline.counterfactuals.generators import build_generator

    for yaml in sorted(Path(CONF, "cfe").glob("*.yaml")):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"cfe={yaml.stem}", f"dataset.task={task}"])
        try:
            gen = build_generator(cfg.cfe, task, ["a negative text", "a positive text"])
        except ConfigError as e:
            assert "\n" not in str(e)
            continue
        if hasattr(gen, "prompt"):  # LLM generators: the prompt renders for this task
            from cod_pipeline.counterfactuals.llm import PromptItem

            msg = gen.prompt.chat_messages(PromptItem("some text", "negative", "positive"))
            assert "some text" in msg[-1]["content"]


def test_fluency_gate_rejects_flips_that_read_worse(sentiment_cfg):
    """With ``max_drop``, no CFE reads worse than its original by more than the gate; the
    ungated search on the same originals does return such flips, so the gate is what held them."""
    from cod_pipeline.counterfactuals.lm import LanguageModel
    from cod_pipeline.counterfactuals.lm_guide import LMGuide
    from cod_pipeline.counterfactuals.search import SearchConfig, search_cfe
    from cod_pipeline.pipeline import prepare
    from cod_pipeline.teacher import ensure_teacher

    cfg = sentiment_cfg("cfe=lm_search")
    splits, _ = prepare(cfg)
    teacher = ensure_teacher(cfg, splits)
    texts = splits.train["text"].iloc[:12].tolist()
    labels = teacher.probs(texts).argmax(-1).tolist()
    lm = LanguageModel()
    assert lm._load()[0] is LanguageModel(batch_size=4)._load()[0]  # loaded once per process, shared by jobs
    descriptions = ["a negative review", "a positive review"]
    drop = lambda r: r.lm_logprob_original - r.lm_logprob  # noqa: E731

    def cfes(**kw):
        guide = LMGuide(lm, descriptions, proposals=3, insertions=1, rank_top=4, **kw)
        return [(r, y) for r, y in zip(search_cfe(texts, labels, teacher.probs, SearchConfig(), guide=guide), labels)
                if r.text]

    free = cfes()
    gate = sorted(drop(r) for r, _ in free)[len(free) // 2]  # the median ungated drop
    gated = cfes(max_drop=gate)
    assert any(drop(r) > gate for r, _ in free)
    assert gated and all(drop(r) <= gate + 1e-9 for r, _ in gated)
    assert all(r.label != y for r, y in gated)  # every CFE still flips the teacher
    # same_pos: an LM substitution keeps the word's part of speech
    from cod_pipeline.counterfactuals.lexicon import guess_pos

    subs = [e.split(" -> ") for r, _ in cfes(same_pos=True) for e in r.edits if " -> " in e]
    assert subs and all(guess_pos(a) == guess_pos(b) for a, b in subs if " " not in b), subs
    # content_words: the LM rewrites nouns, verbs, adjectives and adverbs (same part of speech)
    # and inserts only modifiers; function-word edits come from the task's own family (negation)
    from cod_pipeline.counterfactuals import lexicon as lex
    from cod_pipeline.counterfactuals.lm_guide import MODIFIERS, SWAPPABLE

    edits = [e for r, _ in cfes(content_words=True) for e in r.edits]
    subs = [e.split(" -> ") for e in edits if " -> " in e]
    lm_subs = [(a, b) for a, b in subs if " " not in b and a.lower() not in lex.NEGATIONS and "'" not in a]
    assert lm_subs and all(lex.word_class(a) == lex.word_class(b) in SWAPPABLE for a, b in lm_subs), lm_subs
    inserted = [e[1:] for e in edits if e.startswith("+")]
    assert all(w.lower() in lex.NEGATIONS or lex.word_class(w) in MODIFIERS for w in inserted), inserted
    assert lex.word_class("Where") == lex.word_class("when") == "wh" != lex.word_class("numbers")
    # zero_shot: every CFE raised the LM's log-odds of its new class's description
    ctx = [f"{d}: " for d in descriptions]
    assert lm.class_logprob(["i hated every minute of it ."] * 2, ctx).argmax() == 0  # a zero-shot reader
    guide = LMGuide(lm, descriptions, proposals=3, insertions=1, rank_top=4, zero_shot=0.0)
    found = [(r, x, y) for r, x, y in zip(search_cfe(texts, labels, teacher.probs, SearchConfig(), guide=guide),
                                          texts, labels) if r.text]
    assert found and all(r.label != y for r, _, y in found)
    for r, x, y in found:
        lp = lm.class_logprob([r.text, r.text, x, x], [ctx[r.label], ctx[y], ctx[r.label], ctx[y]])
        assert (lp[0] - lp[1]) - (lp[2] - lp[3]) >= -1e-4
    # a task whose label is fluency (acceptability) opts out of both
    off = LMGuide(lm, descriptions, max_drop=gate, same_pos=True, content_words=True, fluent_cfes=False)
    assert off.max_drop is None and not off.same_pos and not off.content_words


def test_lexicon_first_keeps_every_lexicon_flip_and_asks_the_lm_only_for_the_rest(sentiment_cfg):
    """``cfe.lexicon_first``: where the lexicon search flips the teacher, its CFE is the one kept
    (the LM is not consulted); the LM's proposals serve only the originals it leaves unflipped."""
    from omegaconf import open_dict

    from cod_pipeline.counterfactuals.generators import Item, build_generator
    from cod_pipeline.pipeline import prepare
    from cod_pipeline.teacher import ensure_teacher

    cfg = sentiment_cfg("cfe=lm_search")
    splits, _ = prepare(cfg)
    teacher = ensure_teacher(cfg, splits)
    texts = splits.train["text"].iloc[:16].tolist()
    labels = teacher.probs(texts).argmax(-1).tolist()
    names = ["negative", "positive"]
    items = [Item(t, y, None, names) for t, y in zip(texts, labels)]
    descriptions = ["a negative review", "a positive review"]
    # the same search without its LM: what the lexicon stage is
    plain = build_generator(sentiment_cfg("cfe=lm_search", "~cfe.lm").cfe, "sentiment", descriptions).propose(
        items, teacher.probs)
    with open_dict(cfg):
        cfg.cfe.lexicon_first = True
    gen = build_generator(cfg.cfe, "sentiment", descriptions)
    assert gen.name == "lexicon+lm_search"
    first = gen.propose(items, teacher.probs)
    for p, f in zip(plain, first):
        if p.text:
            assert f.text == p.text and f.extra["lm_logprob"] is not None  # kept, and read by the LM for fluency
    assert sum(bool(f.text) for f in first) >= sum(bool(p.text) for p in plain)


def test_class_words_rank_the_lms_words_by_the_readers_class(tmp_path):
    """cfe.lm.class_words: SmolLM2's words for a slot reranked by lm_reader's own n-gram reader
    (fitted here to rotten_tomatoes' labels): the words it proposes for "brilliant" in a review to
    be made negative carry more of the negative class, as that reader reads them, than without."""
    import numpy as np

    from cod_pipeline.counterfactuals.generators import build_generator
    from tests.test_search import load_rt

    df = load_rt().sample(3000, random_state=0)
    probs = np.eye(2)[df["label"].to_numpy()]
    cfg = make_cfg(tmp_path, ["cfe=lm_reader", "cfe.lm.class_words=2.0"])
    gen = build_generator(cfg.cfe, "sentiment", ["a negative review", "a positive review"])
    gen.fit_pool(df["text"].tolist(), probs)
    gen.guide.word_score = gen._word_scores
    text = "The acting was brilliant and the story moved me."
    start = text.index("brilliant")
    dist, other = gen.guide.lm.next_words([gen.guide._slot(c, text, start) for c in (0, 1)])
    ranked = gen.guide._ranked_words(dist, other, 12, "brilliant", 0, 1)[:3]
    gen.guide.word_score = None
    plain = gen.guide._ranked_words(dist, other, 12, "brilliant", 0, 1)[:3]
    score = lambda ws: float(np.mean(gen._word_scores(ws, 0, 1)))  # noqa: E731
    assert ranked != plain and score(ranked) > score(plain) + 0.5, (ranked, plain)


def test_keep_frame_keeps_function_words_and_the_first_words_class():
    """cfe.lm.keep_frame: the LM's class cues may not replace a function word ("the" -> "certain",
    "about" -> "might") or become one, and the first word keeps its class ("Bears" -> "Too",
    "They" -> "Yes" read as nobody's sentence); acceptability, whose label is the frame, opts out."""
    from cod_pipeline.counterfactuals.lm_guide import LMGuide

    g = LMGuide(None, ["a negative review", "a positive review"], keep_frame=True)
    assert g._framed("the", ["certain", "a"], first=False) == []
    assert g._framed("about", ["might"], first=False) == []
    assert g._framed("solid", ["poor", "the", "might"], first=False) == ["poor"]
    assert g._framed("Bears", ["Too", "Lacks", "Resembles"], first=True) == ["Resembles"]
    assert g._framed("They", ["Yes"], first=True) == []
    assert not LMGuide(None, ["unacceptable", "acceptable"], keep_frame=True, fluent_cfes=False).keep_frame


def test_word_starts_are_found_in_both_tokenizer_styles():
    """SmolLM2's byte-level BPE marks a word start with "Ġ", Gemma's SentencePiece with "▁"; with
    only "Ġ" known, Gemma's vocabulary had no word-starting token and its LM proposed nothing."""
    from cod_pipeline.counterfactuals.lm import word_vocabulary

    for mark in ("Ġ", "▁"):
        words, starts, inner = word_vocabulary([f"{mark}good", "ness", f"{mark}film", f"{mark}3", "!", f"{mark}bad"])
        assert words == ["good", "ness", "film", "3", "!", "bad"]
        assert starts.tolist() == [True, False, True, False, False, True]
        assert inner[1] and not inner[3] and not inner[4]  # "ness" continues a word; "Ġ3", "!" do not
