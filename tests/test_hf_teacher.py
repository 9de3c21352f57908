"""A fine-tuned transformers classifier folder as the teacher: classes matched by name, its
probabilities cached by the folder's fingerprint, and a student distilled from it (KD and LWD)."""
from __future__ import annotations

import pytest
import torch

from cod_pipeline import ConfigError
from cod_pipeline.pipeline import run


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """The embedded all-MiniLM-L6-v2 as a stock BertForSequenceClassification, its classes in the
    reverse of the dataset's order, saved with save_pretrained."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod_pipeline.models.backbone import resolve_path

    src = resolve_path("embedded:minilm")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=2, id2label={0: "positive", 1: "negative"}, label2id={"positive": 0, "negative": 1})
    out = tmp_path_factory.mktemp("hf") / "my-classifier"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def test_a_transformers_classifier_is_the_teacher_with_its_classes_matched_by_name(tiny_cfg, hf_folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod_pipeline.data import load_splits
    from cod_pipeline.teacher import ensure_teacher

    cfg = tiny_cfg(f"model.teacher_checkpoint={hf_folder}", "k=8", "method=lwd")
    splits = load_splits(cfg.dataset)
    teacher = ensure_teacher(cfg, splits)
    texts = splits.test["text"].iloc[:5].tolist()
    ref = AutoModelForSequenceClassification.from_pretrained(hf_folder).eval()
    tok = AutoTokenizer.from_pretrained(hf_folder)
    with torch.no_grad():
        own = torch.stack([ref(**tok([t], return_tensors="pt", truncation=True, max_length=48)).logits[0].softmax(-1)
                           for t in texts]).numpy()
    assert splits.label_names == ["negative", "positive"]
    assert abs(teacher.probs(texts) - own[:, ::-1]).max() < 1e-4  # the model's "negative" is column 1
    assert abs(teacher.test_probs[:5] - own[:, ::-1]).max() < 1e-4
    again = ensure_teacher(cfg, splits)
    assert again.id == teacher.id and again.path == teacher.path  # scored once, then read from the cache
    result = run(cfg)  # a student distilled from it, layer-wise (its hidden states mean-pooled)
    assert result["teacher"]["id"] == teacher.id and result["student"]["test"]["n"] == len(splits.test)


def test_a_classifier_whose_classes_are_not_the_datasets_is_one_line(tiny_cfg, hf_folder, tmp_path):
    import json
    import shutil

    other = tmp_path / "other"
    shutil.copytree(hf_folder, other)
    conf = json.loads((other / "config.json").read_text())
    conf["id2label"], conf["label2id"] = {"0": "sports", "1": "politics"}, {"sports": 0, "politics": 1}
    (other / "config.json").write_text(json.dumps(conf))
    from cod_pipeline.data import load_splits
    from cod_pipeline.teacher import ensure_teacher

    cfg = tiny_cfg(f"model.teacher_checkpoint={other}")
    with pytest.raises(ConfigError, match=r"classes \['sports', 'politics'\] are not the dataset's"):
        ensure_teacher(cfg, load_splits(cfg.dataset))
    with pytest.raises(ConfigError, match="no such folder"):  # a path that is not there, nor a hub name
        ensure_teacher(tiny_cfg(f"model.teacher_checkpoint={tmp_path / 'nope'}"), load_splits(cfg.dataset))


def test_a_hub_name_is_resolved_through_the_cache_offline(hf_folder, tmp_path):
    """``model.teacher_checkpoint=org/name`` with HF_HUB_OFFLINE=1: the classifier is read from a
    Hugging Face cache (laid out here in the hub's own structure) and a student is distilled from it."""
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.test_hub_cache import _env, _repo

    home = tmp_path / "hf"
    _repo(home / "hub", "models", "cod-test/my-classifier",
          {p.name: p.read_bytes() for p in hf_folder.iterdir() if p.is_file()})
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "model=tiny", "model.teacher_checkpoint=cod-test/my-classifier",
                           "k=8", "compare=[]", "cfe=search", "logger=none", "trainer.enable_progress_bar=false"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=_env(home, HF_HUB_OFFLINE="1", COD_ROOT=str(tmp_path / "root")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads(next((tmp_path / "root" / "logs").rglob("result.json")).read_text())
    assert result["student"]["test"]["n"] > 0 and 0 <= result["teacher"]["test"]["accuracy"] <= 1
    missing = subprocess.run([sys.executable, str(ROOT / "run.py"), "model=tiny", "model.teacher_checkpoint=cod-test/absent",
                              "k=8", "compare=[]", "cfe=search", "logger=none"], capture_output=True, text=True,
                             timeout=300, cwd=tmp_path, env=_env(home, HF_HUB_OFFLINE="1", COD_ROOT=str(tmp_path / "r2")))
    errors = [ln for ln in missing.stderr.splitlines() if ln.startswith("error:")]
    assert missing.returncode == 2 and len(errors) == 1 and "cod-test/absent" in errors[0], missing.stderr[-2000:]
