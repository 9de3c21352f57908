"""The embedded decoder pair (``model=smol_llm``): SmolLM2 loaded from its GGUF by the same
``load_classifier`` path as Qwen2.5, cut to 10 layers, last-token pooling with a pad token."""
from __future__ import annotations

import hydra
import torch

from tests.conftest import make_cfg


def test_smol_llm_student_loads_cut_pools_and_trains(tmp_path):
    cfg = make_cfg(tmp_path, ["model=smol_llm"])
    student = hydra.utils.instantiate(cfg.model.student, num_labels=2, cache_dir=str(tmp_path))
    assert type(student.backbone).__name__ == "LlamaModel" and student.num_layers == 10
    assert [m.layer_idx for m in student.backbone.layers.modules() if hasattr(m, "layer_idx")][-1] == 9
    tok = student.tokenizer
    assert tok.pad_token is not None and tok.padding_side == "right"
    batch = student.tokenize(["a fine film", "the plot drags on and on for two hours"])
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()  # padded on the right
    student.train()
    logits, hidden = student(batch["input_ids"], batch["attention_mask"], hidden=True)
    assert logits.shape == (2, 2) and len(hidden) == 11  # embeddings + 10 layers, pooled
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 0]))
    loss.backward()
    assert torch.isfinite(student.head.weight.grad).all() and student.head.weight.grad.abs().sum() > 0
    # last-token pooling reads the last real token: padding more must not change a short text's logits
    student.eval()
    with torch.no_grad():
        alone = student(**{k: v[:1, : int(batch["attention_mask"][0].sum())] for k, v in batch.items()})[0]
        padded = student(batch["input_ids"], batch["attention_mask"])[0][:1]
    assert torch.allclose(alone, padded, atol=1e-4)
