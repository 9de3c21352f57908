"""A distilled student as a ``transformers`` model: backbone + pooling + linear head.

This file is copied into every exported ``student/`` folder and imports nothing but torch and
transformers, so the folder loads where cod_pipeline is not installed:

    AutoModelForSequenceClassification.from_pretrained("student", trust_remote_code=True)

Why remote code: the student pools the backbone's hidden states (mean over tokens, or the last
token) before its head, and no stock ``*ForSequenceClassification`` head pools by a mean.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class CodStudentConfig(PretrainedConfig):
    model_type = "cod_student"

    def __init__(self, backbone: dict | None = None, pooling: str = "mean", max_seq_length: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.backbone = dict(backbone or {})  # the backbone's own config (with its model_type)
        self.pooling, self.max_seq_length = pooling, int(max_seq_length)  # "max_length" is a generation setting

    def backbone_config(self) -> PretrainedConfig:
        spec = dict(self.backbone)
        return AutoConfig.for_model(spec.pop("model_type"), **spec)


def pool(h: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """The student's pooling of one layer's hidden states (right-padded batches)."""
    if pooling == "cls":
        return h[:, 0]
    if pooling == "last":  # decoder LMs: the last non-pad token
        return h[torch.arange(h.size(0), device=h.device), mask.sum(1) - 1]
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


class CodStudentForSequenceClassification(PreTrainedModel):
    config_class = CodStudentConfig
    base_model_prefix = "cod_student"

    def __init__(self, config: CodStudentConfig):
        super().__init__(config)
        backbone = config.backbone_config()
        self.backbone = AutoModel.from_config(backbone)
        self.dropout = nn.Dropout(0.0)
        self.head = nn.Linear(backbone.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module):  # every weight comes from the checkpoint
        pass

    def forward(self, input_ids=None, attention_mask=None, labels=None, output_hidden_states=None, **_):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            output_hidden_states=output_hidden_states)
        logits = self.head(self.dropout(pool(out.last_hidden_state, attention_mask, self.config.pooling)))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits,
                                        hidden_states=out.hidden_states if output_hidden_states else None)
