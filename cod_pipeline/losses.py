"""Distillation losses: CE, KD (α·T²·KL(teacher‖student)) and layer-wise hidden-state MSE."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(softmax(t/T) ‖ softmax(s/T)), batch mean; T² keeps gradients comparable across T."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                    reduction="batchmean", log_target=True) * t * t


def uniform_layer_map(num_student: int, num_teacher: int) -> list[tuple[int, int]]:
    """Student layer i (1-based hidden-state index) -> teacher layer round(i·n/m)."""
    return [(i, max(1, round(i * num_teacher / num_student))) for i in range(1, num_student + 1)]


class LayerProjections(nn.Module):
    """Learned linear maps student width -> teacher width, one per mapped layer pair;
    identity where widths match. Trained with the student."""

    def __init__(self, n_pairs: int, student_width: int, teacher_width: int):
        super().__init__()
        same = student_width == teacher_width
        self.proj = nn.ModuleList(
            [nn.Identity() if same else nn.Linear(student_width, teacher_width) for _ in range(n_pairs)]
        )

    def forward(self, student_hidden: list[torch.Tensor], teacher_hidden: torch.Tensor) -> torch.Tensor:
        """student_hidden: pooled states per mapped pair; teacher_hidden: (batch, pairs, width)."""
        losses = [F.mse_loss(p(h), teacher_hidden[:, j]) for j, (p, h) in enumerate(zip(self.proj, student_hidden))]
        return torch.stack(losses).mean()


def distillation_loss(logits, labels, teacher_logits=None, alpha: float = 0.0, temperature: float = 1.0,
                      hidden_loss: torch.Tensor | None = None, beta: float = 0.0,
                      ce_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``ce_weight``: per-row weights of the CE term (0 for a CFE trained on KL only)."""
    if ce_weight is None:
        ce = F.cross_entropy(logits, labels)
    else:
        ce = (F.cross_entropy(logits, labels, reduction="none") * ce_weight).sum() / ce_weight.sum().clamp(min=1)
    out = {"ce": ce, "loss": ce}
    if teacher_logits is not None and alpha > 0:
        out["kd"] = kd_loss(logits, teacher_logits, temperature)
        out["loss"] = out["loss"] + alpha * out["kd"]
    if hidden_loss is not None and beta > 0:
        out["lwd"] = hidden_loss
        out["loss"] = out["loss"] + beta * hidden_loss
    return out
