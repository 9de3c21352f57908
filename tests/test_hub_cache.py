"""Hub names on an offline cluster (issue #14): models and datasets fetched beforehand into the
Hugging Face cache are used from it under HF_HUB_OFFLINE=1; a repo that is really missing fails
in one line that names it. No mocks and no network: a real cache is laid out in tmp_path in the
hub's own folder structure, and the real transformers / datasets loaders read it.

The pipeline runs in a subprocess because huggingface_hub, transformers and datasets read
HF_HOME / HF_HUB_OFFLINE / HF_ENDPOINT once, at import (as on a cluster node); setting them in
this process would leak into the other tests of the session.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

MODEL_REPO = "sentence-transformers/all-MiniLM-L6-v2"
DATA_REPO = "cod-test/rotten-tomatoes-mini"
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the snapshot's (made-up) commit hash

HF_VARS = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE",
           "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "COD_CACHE", "COD_ROOT")


def _put(repo_dir: Path, rel: str, data: bytes) -> None:
    """One file as the hub cache stores it: content in blobs/<hash>, a relative symlink in the snapshot."""
    blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo_dir / "snapshots" / COMMIT / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))


def _repo(hub_cache: Path, kind: str, repo: str, files: dict[str, bytes]) -> Path:
    repo_dir = hub_cache / f"{kind}--{repo.replace('/', '--')}"
    for rel, data in files.items():
        _put(repo_dir, rel, data)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return repo_dir


DATASET_CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
---
# rotten-tomatoes-mini
A few hundred embedded rotten_tomatoes snippets (tests only).
"""


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    """HF_HOME with hub/models--sentence-transformers--all-MiniLM-L6-v2 (the embedded files) and
    hub/datasets--cod-test--rotten-tomatoes-mini (parquet splits of real rotten_tomatoes rows)."""
    import io

    import pandas as pd

    from cod_pipeline.data.sources import rotten_tomatoes
    from cod_pipeline.models.backbone import resolve_path

    home = tmp_path_factory.mktemp("hf_home")
    hub_cache = home / "hub"
    model_dir = Path(resolve_path("embedded:minilm"))
    _repo(hub_cache, "models", MODEL_REPO,
          {p.relative_to(model_dir).as_posix(): p.read_bytes() for p in sorted(model_dir.rglob("*")) if p.is_file()})

    df = rotten_tomatoes()
    df = df[df["text"].str.len() <= 120]
    rows = pd.concat([df[df["label"] == y].sample(150, random_state=0) for y in (0, 1)])
    rows = rows.sample(frac=1.0, random_state=0)[["text", "label"]].reset_index(drop=True)
    files = {"README.md": DATASET_CARD.encode(), ".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
    for split, part in (("train", rows.iloc[:220]), ("test", rows.iloc[220:])):
        buf = io.BytesIO()
        part.reset_index(drop=True).to_parquet(buf, index=False)
        files[f"data/{split}-00000-of-00001.parquet"] = buf.getvalue()
    _repo(hub_cache, "datasets", DATA_REPO, files)

    # yelp_review_full's layout (label = stars - 1), to check the paper's and the official label mapping
    buf = io.BytesIO()
    stars = [1, 2, 3, 4, 5] * 4
    pd.DataFrame({"label": [s - 1 for s in stars], "text": [f"a {s} star review number {i}" for i, s in enumerate(stars)]}
                 ).to_parquet(buf, index=False)
    _repo(hub_cache, "datasets", "yelp_review_full", {"yelp_review_full/train-00000-of-00001.parquet": buf.getvalue(),
                                                      "yelp_review_full/test-00000-of-00001.parquet": buf.getvalue()})
    return home


def _env(hf_home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in HF_VARS}
    env.update({"HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": str(ROOT), **extra})
    return env


# hub names for both model and data; tiny caps and steps so it runs in well under a minute on 2 cores
HUB_JOB = [
    "model=minilm", f"model.teacher.path={MODEL_REPO}", f"model.student.path={MODEL_REPO}",
    "dataset=imdb", "dataset.name=rt_hub", f"dataset.source.path={DATA_REPO}", "dataset.source.max_chars=null",
    "dataset.val_size=40",
    "model.teacher_training.train_cap=48", "model.teacher_training.val_cap=16", "model.teacher_training.eval_every=2",
    "model.student_training.min_steps=3", "model.student_training.max_steps=3",
    "model.student_training.val_size=16", "model.student_training.eval_every=3",
    "augment=cod", "cfe=search", "cfe.search.max_edits=2", "cfe.search.beam_size=2", "cfe.runtime.max_tries_per_class=4",
    "k=4", "compare=[]", "logger=none", "trainer.enable_progress_bar=false", "threads=2",
]

SCRIPT = """
import json, sys
from pathlib import Path
from tests.conftest import make_cfg
from cod_pipeline.pipeline import run
result = run(make_cfg(Path(sys.argv[1]), json.loads(sys.argv[2])))
print("RESULT " + json.dumps({"teacher": result["teacher"], "student": result["student"]["test"],
                              "cfe": {k: result["cfe"][k] for k in ("validity", "generator")},
                              "sizes": result["sizes"], "model": result["config"]["model"]["teacher"]["path"],
                              "data": result["config"]["dataset"]["source"]["path"]}, default=str))
"""


def test_pipeline_runs_offline_from_hf_cache(hf_home, tmp_path):
    """teacher → CFEs (offline search) → student, with hub ids for model and data, HF_HUB_OFFLINE=1."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), json.dumps(HUB_JOB)], cwd=ROOT,
                          env=_env(hf_home, HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert (result["model"], result["data"]) == (MODEL_REPO, DATA_REPO)
    assert result["sizes"]["test"] == 80 and result["sizes"]["validation"] == 40
    assert result["teacher"]["trained_now"] is True and 0 <= result["teacher"]["test"]["accuracy"] <= 1
    assert result["student"]["n"] == 80 and 0 <= result["student"]["accuracy"] <= 1
    assert result["cfe"]["generator"] == "search" and result["cfe"]["validity"] > 0
    # HF_HOME honoured by datasets too: it built its Arrow cache there
    assert (hf_home / "datasets").is_dir()


def test_unreachable_endpoint_uses_cache_quickly(hf_home):
    """Online mode, but HF_ENDPOINT answers nothing (a closed local port): cached repos still load,
    fast, and a missing one fails in one line that names the endpoint. Also dataset=yelp through the
    same loader: the paper's label mapping, and official_labels=true for the official code's."""
    script = (
        "import time; t = time.time()\n"
        "from cod_pipeline import ConfigError\n"
        "from cod_pipeline.data.sources import hub\n"
        "from cod_pipeline.models.backbone import check_source, load_classifier\n"
        f"check_source({MODEL_REPO!r})\n"
        f"m = load_classifier(2, {MODEL_REPO!r}, keep_layers=[0])\n"
        f"df = hub({DATA_REPO!r})\n"
        "assert len(df) == 300 and set(df['split']) == {'train', 'test'}, df\n"
        "from tests.conftest import make_cfg\n"
        "import hydra\n"
        "def stars(official):\n"
        "    src = make_cfg(__import__('pathlib').Path('.'), ['dataset=yelp', f'dataset.source.official_labels={official}']).dataset.source\n"
        "    df = hydra.utils.instantiate(src, max_chars=None)\n"
        "    df = df[df.split == 'train']\n"
        "    return {int(t.split()[1]): int(y) for t, y in zip(df.text, df.label)}\n"
        "assert stars(False) == {1: 0, 2: 0, 4: 1, 5: 1}, stars(False)\n"
        "assert stars(True) == {1: 0, 2: 0, 3: 0, 5: 1}, stars(True)\n"
        "try:\n"
        "    check_source('cod-test/not-cached')\n"
        "except ConfigError as e:\n"
        "    print('ERR', e)\n"
        "print('SECONDS', time.time() - t)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=_env(hf_home, HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_ETAG_TIMEOUT="3"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    err = next(x for x in proc.stdout.splitlines() if x.startswith("ERR "))
    assert "cod-test/not-cached" in err and "http://127.0.0.1:9 cannot be reached" in err and "hf download" in err
    seconds = float(next(x for x in proc.stdout.splitlines() if x.startswith("SECONDS ")).split()[1])
    assert seconds < 60, proc.stdout


MISSING = {
    "model": ["model=minilm", "model.teacher.path=cod-test/no-such-model", "stage=teacher"],
    "dataset": ["model=tiny", "dataset=imdb", "dataset.source.path=cod-test/no-such-dataset"],
}


@pytest.mark.parametrize("what", ["model", "dataset"])
def test_missing_repo_fails_in_one_line_before_training(hf_home, tmp_path, what):
    """Offline and not in the cache: run.py prints one `error:` line naming the repo, where it looked
    and how to fetch it, exits 2, and has trained (cached) nothing."""
    never = tmp_path / "cache-never-written"
    proc = subprocess.run([sys.executable, "run.py", *MISSING[what], "logger=none", f"paths.root_dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=_env(hf_home, HF_HUB_OFFLINE="1", COD_CACHE=str(never)))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    repo = f"cod-test/no-such-{what}"
    hint = f"hf download{' --repo-type dataset' if what == 'dataset' else ''} {repo}"
    assert repo in lines[0] and "not in the local cache" in lines[0] and str(hf_home / "hub") in lines[0]
    assert hint in lines[0]
    assert not never.exists()  # failed before any training: nothing cached


def test_yelp_official_labels_flag(tmp_path):
    """dataset=yelp: the paper's mapping by default; official_labels=true is the official code's."""
    from cod_pipeline import ConfigError
    from cod_pipeline.data.sources import OFFICIAL_LABELS, hub
    from tests.conftest import make_cfg

    cfg = make_cfg(tmp_path, ["dataset=yelp"])
    assert cfg.dataset.source.official_labels is False
    assert dict(cfg.dataset.source.label_map) == {0: 0, 1: 0, 3: 1, 4: 1} and list(cfg.dataset.source.drop_labels) == [2]
    assert OFFICIAL_LABELS[cfg.dataset.source.path] == {"label_map": {0: 0, 1: 0, 2: 0, 4: 1}, "drop_labels": [3]}
    with pytest.raises(ConfigError, match="no official label variant"):
        hub("imdb", official_labels=True)
