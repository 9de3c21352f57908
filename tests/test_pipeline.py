"""End to end on tiny models and the embedded rotten_tomatoes data; error paths via run.py."""
import json
import os
import subprocess
import sys

import pytest
import torch

from cod_pipeline import ConfigError
from cod_pipeline.pipeline import run
from tests.conftest import ROOT


def test_end_to_end_writes_result_with_sane_metrics(tiny_cfg):
    cfg = tiny_cfg("k=8", "seed=1")
    result = run(cfg)
    with open(os.path.join(cfg.paths.output_dir, "result.json")) as f:
        saved = json.load(f)
    assert saved["run_hash"] == result["run_hash"]
    assert (saved["dataset"], saved["method"], saved["k"], saved["seed"]) == ("rotten_tomatoes", "kd", 8, 1)
    for who in ("teacher", "student"):
        m = saved[who]["test"]
        assert 0.0 <= m["accuracy"] <= 1.0 and -1.0 <= m["mcc"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
        assert m["n"] == saved["sizes"]["test"]
    assert 0.0 <= saved["student"]["test"]["agreement"] <= 1.0
    assert saved["student"]["selection"] == "val" and saved["student"]["train_size"] == 8
    assert set(saved["timings_s"]) >= {"data", "teacher", "student"}
    assert saved["config"]["model"]["name"] == "tiny"


def test_test_predictions_are_saved_kept_with_the_result_and_weights_on_request(tiny_cfg):
    import pandas as pd
    from omegaconf import open_dict

    cfg = tiny_cfg("k=8")
    result = run(cfg)
    pred = pd.read_csv(os.path.join(cfg.paths.output_dir, "predictions.csv"))
    assert len(pred) == result["sizes"]["test"] and pred["id"].is_unique
    assert (pred["student_pred"] == pred["label"]).mean() == pytest.approx(result["student"]["test"]["accuracy"])
    assert (pred["student_pred"] == pred["teacher_pred"]).mean() == pytest.approx(result["student"]["test"]["agreement"])
    assert not os.path.exists(os.path.join(cfg.paths.output_dir, "student"))  # not asked for

    again = tiny_cfg("k=8")
    with open_dict(again):
        again.paths.output_dir += "_again"
    assert run(again)["run_hash"] == result["run_hash"]  # reused from the cache ...
    assert pd.read_csv(os.path.join(again.paths.output_dir, "predictions.csv")).equals(pred)  # ... with its predictions

    keep = tiny_cfg("k=8", "save_student=true")  # same identity, but weights were asked for: trains again
    with open_dict(keep):
        keep.paths.output_dir += "_keep"
    assert run(keep)["run_hash"] == result["run_hash"]
    assert os.path.isfile(os.path.join(keep.paths.output_dir, "student", "model.safetensors"))


def test_teacher_is_cached_and_not_retrained(tiny_cfg):
    first = run(tiny_cfg("stage=teacher"))
    assert first["teacher"]["trained_now"] is True
    second = run(tiny_cfg("method=finetune", "k=4"))
    assert second["teacher"]["trained_now"] is False
    assert second["teacher"]["id"] == first["teacher"]["id"]
    assert second["teacher"]["test"] == first["teacher"]["test"]


@pytest.mark.parametrize("selection", ["last", "agreement"])
def test_selection_modes_are_recorded(tiny_cfg, selection):
    result = run(tiny_cfg(f"model.student_training.selection={selection}", "k=4"))
    assert result["student"]["selection"] == selection


def test_head_init_from_label_descriptions(tiny_cfg):
    from cod_pipeline.models.backbone import load_classifier, predict

    cfg = tiny_cfg()
    model = load_classifier(2, None, tiny=cfg.model.student.tiny, cache_dir=cfg.paths.cache_dir)
    texts = ["a negative review", "a positive review"]
    model.init_head_from_text(texts, scale=5.0)
    e = predict(model, texts, hidden_layers=[-1])[1][:, 0]
    w = model.head.weight.detach()
    assert torch.allclose(w.norm(dim=-1) * e.norm(dim=-1).mean(), torch.full((2,), 5.0), atol=1e-4)
    assert torch.allclose(torch.cosine_similarity(w, e, dim=-1), torch.ones(2), atol=1e-5)
    assert not model.head.bias.detach().any()
    result = run(tiny_cfg("model.student_training.head_init=label_names", "k=4"))
    assert 0 <= result["student"]["val_score_at_init"] <= 1
    with pytest.raises(ConfigError, match="head_init must be"):
        run(tiny_cfg("model.student_training.head_init=zeros", "k=4"))
    with pytest.raises(ConfigError, match="label_template must contain"):
        run(tiny_cfg("model.student_training.head_init=label_names", "dataset.label_template=review", "k=4"))
    from cod_pipeline.teacher import teacher_key  # the template is the student's: the teacher stays cached

    assert teacher_key(tiny_cfg("dataset.label_template='x{}'")) == teacher_key(tiny_cfg())


def test_lwd_with_different_widths_and_per_step_teacher(tiny_cfg):
    result = run(tiny_cfg("method=lwd", "k=4", "method.teacher_forward_every_step=true"))
    assert result["method"] == "lwd" and 0 <= result["student"]["test"]["accuracy"] <= 1


def test_local_multiclass_file(tiny_cfg, tmp_path):
    path = tmp_path / "six.jsonl"
    kinds = ["who", "what", "when", "where", "why", "how"]
    rows = [{"q": f"{kinds[i % 6]} question number {i}", "y": kinds[i % 6]} for i in range(600)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = tiny_cfg("dataset=local", f"dataset.source.path={path}", "dataset.source.text_column=q",
                   "dataset.source.label_column=y", "dataset.val_size=60", "dataset.test_size=120", "k=12",
                   "model.student_training.head_init=label_names")  # label words taken from the file
    result = run(cfg)
    assert result["num_classes"] == 6 and result["student"]["train_size"] == 12
    assert result["data"].startswith("six.jsonl#")  # the file by content: part of the report's cell


def test_bad_k_fails_before_any_model(tiny_cfg):
    with pytest.raises(ConfigError, match="not divisible"):
        run(tiny_cfg("k=7"))
    assert not os.path.exists(os.path.join(tiny_cfg().paths.cache_dir, "teacher"))


def test_label_set_must_match_teacher_head(tiny_cfg, tmp_path):
    run(tiny_cfg("stage=teacher"))
    cache = os.path.join(tiny_cfg().paths.cache_dir, "teacher")
    teacher_dir = os.path.join(cache, os.listdir(cache)[0])
    path = tmp_path / "three.csv"
    path.write_text("sentence,label\n" + "\n".join(f"text {i},{i % 3}" for i in range(300)))
    cfg = tiny_cfg("dataset=local", f"dataset.source.path={path}", "dataset.val_size=30", "dataset.test_size=60",
                   "k=6", f"model.teacher_checkpoint={teacher_dir}")
    with pytest.raises(ConfigError, match="2 classes"):
        run(cfg)


def run_cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("args,needle", [
    (["dataset=nope"], "Could not find 'dataset/nope'"),
    (["k=7"], "not divisible"),
    (["k=abc"], "k must be an integer"),
    (["dataset=local", "dataset.source.path=/no/such/file.tsv"], "not found"),
    (["dataset=imdb"], "needs the Hugging Face hub"),
    (["model=deberta_v3", "stage=teacher"], "needs the Hugging Face hub"),
    (["trainer=gpu"], "no CUDA device"),
])
def test_cli_bad_input_one_clear_line(args, needle, tmp_path):
    never = tmp_path / "cache-never-written"
    proc = run_cli(*args, "model=tiny" if not any(a.startswith("model=") for a in args) else "logger=none",
                   f"paths.root_dir={tmp_path}", env_extra={"HF_HUB_OFFLINE": "1", "COD_CACHE": str(never)})
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert any(needle in line for line in lines), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not never.exists()  # no heavy work started: nothing cached
