"""The Python API: compose and run outside ``@hydra.main``, CFEs for any texts."""
from __future__ import annotations

from pathlib import Path

import cod_pipeline as cod


def test_compose_names_the_run_folder_by_its_coordinates_and_run_works_outside_hydra(tmp_path, monkeypatch):
    monkeypatch.setenv("COD_ROOT", str(tmp_path))
    cfg = cod.compose(["model=tiny", "logger=none", "compare=[]", "cfe=search", "k=8", "seed=3",
                       "trainer.enable_progress_bar=false"])
    out = Path(cfg.paths.output_dir)
    assert out == tmp_path / "logs" / "cod" / "api" / "rotten_tomatoes" / "tiny" / "kd+none" / "k8" / "seed3"
    result = cod.run(cfg)
    assert result["k"] == 8 and result["seed"] == 3 and (out / "result.json").is_file()
    mine = cod.compose(["model=tiny", f"paths.output_dir={tmp_path / 'mine'}"])
    assert mine.paths.output_dir == str(tmp_path / "mine")


def test_generate_cfes_returns_one_record_per_text_in_order_and_caches(sentiment_cfg):
    cfg = sentiment_cfg("cfe=search")
    texts = ["the film was wonderful and the plot number 3 .", "the cast was awful and the ending number 9 .",
             "the film was wonderful and the plot number 3 ."]
    teacher = cod.load_teacher(cfg)
    recs = cod.generate_cfes(texts, cfg, teacher)
    assert [r["original"] for r in recs] == texts and recs[0] == recs[2]
    labels = teacher.probs(texts).argmax(-1).tolist()
    assert [r["label"] for r in recs] == labels
    valid = [r for r in recs if r["valid"]]
    assert valid and all(r["cfe_label"] != r["label"] for r in valid)
    assert all(int(teacher.probs([r["cfe"]]).argmax()) == r["cfe_label"] for r in valid)  # it flips the teacher
    assert cod.generate_cfes(texts[:1], cfg, teacher) == recs[:1]  # from the store
