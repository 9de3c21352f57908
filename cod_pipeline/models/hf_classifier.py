"""A fine-tuned ``transformers`` classifier folder as the teacher (``model.teacher_checkpoint=DIR``).

Most users already have one (``*ForSequenceClassification`` saved with ``save_pretrained``). It
keeps its own head; its classes are matched to the dataset's by name (``id2label``), or by index
where the folder's names are the default ``LABEL_0`` … For layer-wise losses its hidden states
are mean-pooled, as the project's own classifiers' are.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from cod_pipeline import ConfigError
from cod_pipeline.hf_student import pool


def resolve_checkpoint(ckpt: str) -> str:
    """A folder as given, or a hub name (``org/name``) through the Hugging Face cache: offline
    (HF_HUB_OFFLINE=1) from the cache alone, else fetched into it; one line when neither works."""
    import re

    if Path(ckpt).is_dir():
        return str(ckpt)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(ckpt)) or Path(ckpt).exists():
        raise ConfigError(f"model.teacher_checkpoint={ckpt}: no such folder (nor a hub name org/name)")
    from cod_pipeline.data.sources import require_hub

    where = require_hub(f"model.teacher_checkpoint={ckpt}", str(ckpt))  # one line when out of reach
    if Path(where).is_dir():
        return where
    from huggingface_hub import snapshot_download

    return snapshot_download(str(ckpt))


def is_hf_classifier(path: str | Path) -> bool:
    """A ``save_pretrained`` folder (config.json) rather than one ``stage=teacher`` wrote (meta.json)."""
    p = Path(path)
    return (p / "config.json").is_file() and not (p / "meta.json").is_file()


def fingerprint(path: str | Path) -> str:
    """The folder's identity for the teacher cache: its config, and each weight file's name and size."""
    p, h = Path(path), hashlib.sha256()
    h.update((p / "config.json").read_bytes())
    for f in sorted(p.glob("*")):
        if f.suffix in (".safetensors", ".bin", ".pt", ".pth") and f.is_file():
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def label_order(id2label: dict, label_names: list[str], where) -> list[int]:
    """For each dataset class, the model's output index of it."""
    names = [str(id2label[i]) for i in range(len(id2label))]
    if len(names) != len(label_names):
        raise ConfigError(f"model.teacher_checkpoint={where} has {len(names)} classes {names}, but the dataset "
                          f"has {len(label_names)} {label_names}")
    lower = [n.lower() for n in names]
    if sorted(lower) == sorted(str(n).lower() for n in label_names):
        return [lower.index(str(n).lower()) for n in label_names]
    if all(n.upper().startswith("LABEL_") for n in names):
        return list(range(len(names)))
    raise ConfigError(f"model.teacher_checkpoint={where}: its classes {names} are not the dataset's "
                      f"{label_names} (set dataset.label_names to the model's names)")


class HFClassifier(nn.Module):
    """The interface the pipeline's teacher has (``tokenize``; ``forward`` → logits and pooled
    hidden states; ``num_layers``, ``width``), over a stock ``*ForSequenceClassification``."""

    def __init__(self, model, tokenizer, order: list[int], max_length: int = 128, name: str = ""):
        super().__init__()
        self.hf, self.tokenizer, self.max_length, self.name = model, tokenizer, int(max_length), name or model.name_or_path
        self.register_buffer("order", torch.tensor(order), persistent=False)
        self.num_labels, self.pooling = len(order), "mean"
        cfg = model.config
        inner = cfg.backbone if isinstance(getattr(cfg, "backbone", None), dict) else {}  # an exported student
        self.width = int(getattr(cfg, "hidden_size", None) or inner["hidden_size"])
        self.num_layers = int(getattr(cfg, "num_hidden_layers", None) or inner["num_hidden_layers"])

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def forward(self, input_ids, attention_mask, hidden: bool = False, **_):
        out = self.hf(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=hidden)
        logits = out.logits[:, self.order]
        if not hidden:
            return logits, None
        return logits, [pool(h, attention_mask, "mean") for h in out.hidden_states]


def load_hf_classifier(path: str | Path, label_names: list[str], max_length: int = 128) -> HFClassifier:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    p = Path(path)
    config = json.loads((p / "config.json").read_text())
    local_code = any((p / f"{ref.split('.')[0]}.py").is_file() for ref in (config.get("auto_map") or {}).values())
    try:  # remote code only where the folder carries it (a student this project exported)
        model = AutoModelForSequenceClassification.from_pretrained(str(p), trust_remote_code=local_code)
        tok = AutoTokenizer.from_pretrained(str(p), trust_remote_code=local_code)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"model.teacher_checkpoint={path}: not a loadable transformers classifier: "
                          f"{str(e).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id  # decoder classifiers find the last token by it
    order = label_order(model.config.id2label, label_names, path)
    return HFClassifier(model.eval(), tok, order, max_length, name=p.name)
