"""The two controls that say what limits CoD: retrieved partners and the practitioner's budget.
Both draw their originals as CoD does (a prefix of KD's seeded draw) and keep each pair in one
mini-batch; a CoD run records the judge's faithfulness of its CFE set."""
import numpy as np
import pytest

from cod_pipeline.counterfactuals.pairing import paired_rows
from cod_pipeline.data.datamodule import GroupBatchSampler
from cod_pipeline.judge import measure_cfes
from cod_pipeline.pipeline import prepare, run
from cod_pipeline.teacher import ensure_teacher


def _rows(cfg):
    splits, sampler = prepare(cfg)
    teacher = ensure_teacher(cfg, splits)
    rows, quality = paired_rows(cfg, splits, sampler, teacher)
    return splits, sampler, teacher, rows, quality


def _groups_stay_whole(rows, batch_size):
    groups = [r["group"] for r in rows]
    for batch in GroupBatchSampler(groups, batch_size, shuffle=True, seed=3):
        seen = {groups[i] for i in batch}
        assert all(sum(g == x for x in groups) == sum(groups[i] == g for i in batch) for g in seen)


@pytest.mark.parametrize("augment,share", [("retrieved", 0.5), ("cod_full", 1.0)])
def test_controls_draw_originals_as_cod_and_pair_them(sentiment_cfg, augment, share):
    cfg = sentiment_cfg(f"augment={augment}", "k=8")
    splits, sampler, teacher, rows, quality = _rows(cfg)
    originals = [r["id"] for r in rows if not r["is_cfe"]]
    drawn = splits.train.iloc[list(sampler.draw(int(8 * share)))]["id"].tolist()
    assert originals == drawn  # CoD's originals: the first k/2 (or all k) of KD's own draw
    partners = [r for r in rows if r["is_cfe"]]
    assert partners and all(sum(p["group"] == o["group"] for o in rows if not o["is_cfe"]) == 1 for p in partners)
    probs = teacher.probs([p["text"] for p in partners])
    assert [int(p.argmax()) for p in probs] == [p["label"] for p in partners]  # labelled by the teacher
    _groups_stay_whole(rows, cfg.model.student_training.batch_size)
    if augment == "retrieved":  # real pool text of another teacher class, never an original of the draw
        assert len(rows) == 8 and not set(p["text"] for p in partners) & set(splits.train.iloc[
            list(sampler.draw(4))]["text"])
        pool_texts = set(splits.train["text"])
        assert all(p["text"] in pool_texts for p in partners)
        orig_pred = teacher.probs([r["text"] for r in rows if not r["is_cfe"]]).argmax(1)
        assert all(o != p["label"] for o, p in zip(orig_pred, partners))
    else:  # 2k rows from k labels at most: no original beyond the k is spent
        assert len(originals) == 8 and len(rows) <= 16
    judged = measure_cfes(cfg, splits, quality)
    assert "records" not in judged and 0.0 <= judged["faithfulness"] <= 1.0


def test_a_cod_run_records_faithfulness_and_a_judge_column(sentiment_cfg):
    result = run(sentiment_cfg("augment=cod", "k=8"))
    q = result["cfe"]
    assert q["judge"]["family"] == "ngram-logreg" and q["judge"]["test"]["accuracy"] > 0.9
    assert isinstance(q["faithfulness"], float) and q["n_judged"] == q["n_valid"]
    assert "records" not in q and np.isfinite(q["judge_teacher_agreement"])
    assert "| judge |" in open(q["samples_file"]).read()
    result = run(sentiment_cfg("augment=cod", "k=8", "judge=none", "method=finetune"))
    assert "faithfulness" not in result["cfe"] and "records" not in result["cfe"]
