"""The distilled student leaves the tool: a transformers folder that loads without cod_pipeline
and reproduces the run's own test predictions, a model card, and the predict command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cod_pipeline.pipeline import run

LOAD_ALONE = r"""
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
path, texts = sys.argv[1], json.loads(sys.stdin.read())
model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
with torch.no_grad():
    probs = [model(**tok([t], return_tensors="pt", truncation=True)).logits.softmax(-1)[0].tolist() for t in texts]
assert not any(m.startswith("cod_pipeline") for m in sys.modules), "cod_pipeline was imported"
print(json.dumps({"probs": probs, "labels": [model.config.id2label[i] for i in range(model.config.num_labels)]}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from cod_pipeline.data import load_splits
    from tests.conftest import make_cfg

    root = tmp_path_factory.mktemp("export")
    cfg = make_cfg(root, ["model=tiny", "logger=none", "trainer.enable_progress_bar=false", "compare=[]",
                          "cfe=search", "k=8", "save_student=true"])
    result = run(cfg)
    out = Path(cfg.paths.output_dir)
    test = load_splits(cfg.dataset).test
    return out, result, test


def test_the_student_folder_loads_with_transformers_alone_and_reproduces_the_runs_predictions(exported):
    out, result, test = exported
    folder = out / "student"
    assert result["student"]["export"] == str(folder)
    assert {"config.json", "model.safetensors", "hf_student.py", "README.md"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"} and config["pooling"] == "mean"
    pred = pd.read_csv(out / "predictions.csv").set_index("id")
    sample = test.iloc[:50]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LOAD_ALONE, str(folder)], input=json.dumps(sample["text"].tolist()),
                          capture_output=True, text=True, cwd=folder.parent, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["labels"] == ["negative", "positive"]
    want = pred.loc[sample["id"], ["student_p_negative", "student_p_positive"]].to_numpy()
    assert abs(pd.DataFrame(got["probs"]).to_numpy() - want).max() < 1e-4  # predictions.csv keeps 5 decimals
    # and to 1e-5 against the pipeline's own model class, loaded with the exported weights
    from safetensors.torch import load_file

    from cod_pipeline.models.backbone import predict
    from cod_pipeline.student import build_student
    from tests.conftest import make_cfg

    student = build_student(make_cfg(out.parent, ["model=tiny"]), type("S", (), {"num_classes": 2,
                                                                               "label_names": ["negative", "positive"]}))
    student.load_state_dict(load_file(folder / "model.safetensors"))
    mine = predict(student, sample["text"].tolist())[0].softmax(-1).numpy()
    assert abs(pd.DataFrame(got["probs"]).to_numpy() - mine).max() < 1e-5


def test_the_model_card_names_the_run(exported):
    out, result, _ = exported
    card = (out / "student" / "README.md").read_text()
    for needle in ("rotten_tomatoes", f"| k (labelled examples) | {result['k']} |", f"| seed | {result['seed']} |",
                   f"accuracy {result['student']['test']['accuracy']:.4f}", "trust_remote_code=True"):
        assert needle in card, needle


def test_predict_labels_a_file_and_matches_the_python_api(exported, tmp_path):
    from cod_pipeline.predict import load_student

    out, _, test = exported
    texts = test["text"].iloc[:150].tolist()  # three batches of 64: the length-sorted order is undone
    src = tmp_path / "in.tsv"
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(src, sep="\t", index=False)
    dst = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "cod_pipeline.predict", str(out / "student"), str(src), "--out", str(dst)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(i) for i in range(len(texts))] and [r["text"] for r in rows] == texts
    api = load_student(out / "student").predict(texts)
    assert [r["label"] for r in rows] == [a["label"] for a in api]
    assert all(abs(r["p_positive"] - a["probs"]["positive"]) < 1e-5 for r, a in zip(rows, api))
    assert all(abs(r["p_negative"] + r["p_positive"] - 1) < 1e-4 for r in rows)


def test_predict_rejects_bad_input_in_one_line(exported, tmp_path):
    out, _, _ = exported
    src = tmp_path / "in.csv"
    src.write_text("sentence\nfine\n")
    proc = subprocess.run([sys.executable, "-m", "cod_pipeline.predict", str(out / "student"), str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "no 'text' column" in proc.stderr and "--text-column" in proc.stderr
    good = tmp_path / "lines.txt"
    good.write_text("a fine film\n")
    proc = subprocess.run([sys.executable, "-m", "cod_pipeline.predict", str(tmp_path), str(good)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not an exported student" in proc.stderr


def test_export_of_a_run_that_kept_only_student_pt(exported, tmp_path):
    """Older runs kept bare weights: ``python -m cod_pipeline.export RUN_DIR`` writes the folder."""
    import shutil

    import torch

    from cod_pipeline.predict import load_student

    out, _, test = exported
    old = tmp_path / "old_run"
    old.mkdir()
    shutil.copy(out / "result.json", old / "result.json")
    hf = load_student(out / "student").model
    torch.save(hf.state_dict(), old / "student.pt")  # the Classifier's keys: backbone.*, head.*
    assert subprocess.run([sys.executable, "-m", "cod_pipeline.export", str(tmp_path)], capture_output=True,
                          text=True, timeout=120).returncode == 2  # no result.json there: one line
    proc = subprocess.run([sys.executable, "-m", "cod_pipeline.export", str(old)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    texts = test["text"].iloc[:10].tolist()
    a, b = load_student(old / "student").predict_proba(texts), load_student(out / "student").predict_proba(texts)
    assert abs(a - b).max() < 1e-6


def test_predict_reads_stdin(exported):
    out, _, _ = exported
    proc = subprocess.run([sys.executable, "-m", "cod_pipeline.predict", str(out / "student"), "-"],
                          input="a wonderful , moving film\n\nthe dullest hour of my life\n", capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["a wonderful , moving film", "the dullest hour of my life"]
    assert all(r["label"] in ("negative", "positive") and abs(r["p_negative"] + r["p_positive"] - 1) < 1e-4
               for r in rows)
