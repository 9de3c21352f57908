"""The distilled student as a standard ``transformers`` folder, with a model card from its run.

``save_student=true`` writes ``<run dir>/student/``; ``python -m cod_pipeline.export RUN_DIR``
does it for a finished run that saved ``student.pt`` (older runs). The folder holds the weights
(safetensors), the tokenizer, a config with ``id2label``, the pooling, the kept layers and the
max length, ``hf_student.py`` (the model class), and ``README.md``. It is written beside and
renamed into place, so a ``student/`` that exists is complete.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from cod_pipeline import ConfigError

LOAD = 'AutoModelForSequenceClassification.from_pretrained("{path}", trust_remote_code=True)'


def export_student(student, out_dir: str | os.PathLike, label_names, result: dict | None = None) -> Path:
    """Write ``student`` (a ``backbone.Classifier``) to ``out_dir`` as a transformers folder."""
    from cod_pipeline.hf_student import CodStudentConfig, CodStudentForSequenceClassification

    out = Path(out_dir)
    names = [str(n) for n in label_names]
    spec = ((result or {}).get("config") or {}).get("model", {}).get("student", {})
    config = CodStudentConfig(
        backbone=student.backbone.config.to_dict(), pooling=student.pooling, max_seq_length=student.max_length,
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        cod={"name": student.name, "source": spec.get("path"), "layers_path": student.layers_path,
             "keep_layers": spec.get("keep_layers")})
    CodStudentConfig.register_for_auto_class()
    CodStudentForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
    model = CodStudentForSequenceClassification(config)
    model.load_state_dict(student.state_dict())
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    student.tokenizer.model_max_length = student.max_length  # truncation as the student was trained
    student.tokenizer.save_pretrained(tmp)
    (tmp / "README.md").write_text(model_card(result or {}, names, out))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def _metrics(m: dict | None) -> str:
    if not m:
        return "—"
    keys = [k for k in ("accuracy", "macro_f1", "mcc", "agreement") if k in m]
    return ", ".join(f"{k} {m[k]:.4f}" for k in keys) + (f" (n={m['n']})" if "n" in m else "")


def model_card(result: dict, label_names: list[str], out: Path) -> str:
    """The card a reader of the folder needs: what it was distilled from, on what, and how it scores."""
    cfg = result.get("config") or {}
    model = cfg.get("model") or {}
    cfe = result.get("cfe") or {}
    prov = result.get("provenance") or {}
    commit = prov.get("commit") or "unknown"
    rows = [
        ("dataset", result.get("dataset")), ("labels", ", ".join(label_names)),
        ("k (labelled examples)", result.get("k")), ("seed", result.get("seed")),
        ("method", f"{result.get('method')} (alpha={result.get('alpha')})"), ("augment", result.get("augment")),
        ("CFE generator", cfe.get("generator", "none")),
        ("CFE validity / faithfulness", f"{cfe['validity']:.2f} / {cfe.get('faithfulness')}" if cfe else "—"),
        ("student", (model.get("student") or {}).get("name")),
        ("teacher", (model.get("teacher") or {}).get("name")),
        ("teacher test", _metrics((result.get("teacher") or {}).get("test"))),
        ("student test", _metrics((result.get("student") or {}).get("test"))),
        ("run", result.get("run_hash")), ("cod-pipeline commit", commit + (" (dirty)" if prov.get("dirty") else "")),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [cod-pipeline, knowledge-distillation, counterfactuals]
---
# {(model.get('student') or {}).get('name', 'student')}, distilled by cod-pipeline

| | |
|---|---|
{table}

## Use

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = {LOAD.format(path=out.name)}
tokenizer = AutoTokenizer.from_pretrained("{out.name}", trust_remote_code=True)
probs = model(**tokenizer(["a text"], return_tensors="pt", truncation=True)).logits.softmax(-1)
```

`trust_remote_code` loads `hf_student.py` from this folder: the student mean- (or last-token-)
pools its backbone before the head, which no stock head does. Or, with cod-pipeline installed:
`python -m cod_pipeline.predict {out.name} input.tsv`.

The test metrics are on the dataset's test split ({result.get('primary_metric', 'accuracy')} is the
primary metric); one seed is one draw of k examples, so compare seeds before trusting a gap.
"""


def student_from_run(run_dir: Path):
    """The ``Classifier`` a finished run saved as ``student.pt``, rebuilt from its result's config."""
    import hydra.utils
    import torch
    from omegaconf import OmegaConf

    result_file, weights = run_dir / "result.json", run_dir / "student.pt"
    if not result_file.is_file():
        raise ConfigError(f"{run_dir}: no result.json (not a finished student run)")
    if not weights.is_file():
        raise ConfigError(f"{run_dir}: no student.pt; rerun the job with save_student=true "
                          "(it writes student/ directly)")
    result = json.loads(result_file.read_text())
    cfg = OmegaConf.create(result["config"])
    student = hydra.utils.instantiate(cfg.model.student, num_labels=int(result["num_classes"]),
                                      cache_dir=cfg.paths.get("cache_dir"))
    student.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return student, result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cod_pipeline.export",
                                 description="Write a finished run's student as a transformers folder.")
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/student")
    args = ap.parse_args(argv)
    try:
        student, result = student_from_run(args.run_dir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = export_student(student, args.out or args.run_dir / "student", result["label_names"], result)
    print(f"student: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
