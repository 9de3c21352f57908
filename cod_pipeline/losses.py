"""Distillation losses as weighted sums of declared terms (torchdistill style).

Each term is a small module with a ``weight`` that declares which teacher outputs it needs
(``needs`` ⊆ {"logits", "hidden"}); ``conf/method/*.yaml`` lists the terms under ``loss:`` with
``_target_`` and weight, and :class:`WeightedSum` adds them up. A new method is one term class
(if none fits) plus one YAML. A term whose weight is 0 is left out: it is not computed, not
logged, builds no parameters, and its teacher outputs are not computed either.

``distillation_loss`` is the earlier fixed formula (CE + α·KD + β·hidden MSE), kept as the
reference the terms are tested against.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

TEACHER_OUTPUTS = ("logits", "hidden")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(softmax(t/T) ‖ softmax(s/T)), batch mean; T² keeps gradients comparable across T."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                    reduction="batchmean", log_target=True) * t * t


def weighted_ce(logits: torch.Tensor, labels: torch.Tensor, ce_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy; ``ce_weight``: per-row weights (0 for a CFE trained on KL only)."""
    if ce_weight is None:
        return F.cross_entropy(logits, labels)
    return (F.cross_entropy(logits, labels, reduction="none") * ce_weight).sum() / ce_weight.sum().clamp(min=1)


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


@dataclass
class StepOutputs:
    """What one training step hands the loss terms."""

    logits: torch.Tensor
    labels: torch.Tensor
    hidden: list[torch.Tensor] | None = None  # the student's pooled hidden states, index 0 = embeddings
    teacher_logits: torch.Tensor | None = None
    teacher_hidden: torch.Tensor | None = None  # (batch, teacher_layers, width), in term order
    ce_weight: torch.Tensor | None = None


class LossTerm(nn.Module):
    """One weighted term. ``needs``: the teacher outputs it reads; ``bind`` is called once with
    both models before training (a term with parameters builds them there)."""

    needs: frozenset[str] = frozenset()

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = float(weight)

    def bind(self, student, teacher) -> None:
        pass

    @property
    def teacher_layers(self) -> list[int]:
        """Teacher hidden-state indices this term reads (for ``needs`` containing "hidden")."""
        return []

    @property
    def student_hidden(self) -> bool:
        return False


class CrossEntropy(LossTerm):
    """CE on the row's label (the teacher's label for a CFE), weighted per row by ``ce_weight``."""

    def forward(self, out: StepOutputs) -> torch.Tensor:
        return weighted_ce(out.logits, out.labels, out.ce_weight)


class SoftTargetKL(LossTerm):
    """T²·KL(teacher ‖ student) on temperature-softened logits (Hinton et al.)."""

    needs = frozenset({"logits"})

    def __init__(self, weight: float = 1.0, temperature: float = 1.0):
        super().__init__(weight)
        self.temperature = float(temperature)

    def forward(self, out: StepOutputs) -> torch.Tensor:
        return kd_loss(out.logits, out.teacher_logits, self.temperature)


class HiddenStateMSE(LossTerm):
    """MSE between projected student hidden states and the teacher's, over mapped layer pairs
    (``layer_map``: [[student, teacher], ...] hidden-state indices, 1 = first block; null = uniform)."""

    needs = frozenset({"hidden"})

    def __init__(self, weight: float = 1.0, layer_map: list | None = None):
        super().__init__(weight)
        self.layer_map = [tuple(p) for p in layer_map] if layer_map else None
        self.projections: LayerProjections | None = None

    def bind(self, student, teacher) -> None:
        if self.layer_map is None:
            self.layer_map = uniform_layer_map(student.num_layers, teacher.num_layers)
        self.projections = LayerProjections(len(self.layer_map), student.width, teacher.width)

    @property
    def teacher_layers(self) -> list[int]:
        return [j for _, j in self.layer_map]

    @property
    def student_hidden(self) -> bool:
        return True

    def forward(self, out: StepOutputs) -> torch.Tensor:
        return self.projections([out.hidden[i] for i, _ in self.layer_map], out.teacher_hidden)


class WeightedSum(nn.Module):
    """Σ weight·term over the terms with a non-zero weight, in their config order; returns each
    term's value and the total (``loss``)."""

    def __init__(self, terms: dict[str, LossTerm]):
        super().__init__()
        active = {name: t for name, t in terms.items() if t.weight != 0}
        if not active:
            raise ValueError("the method's loss has no term with a non-zero weight")
        self.terms = nn.ModuleDict(active)

    @property
    def needs(self) -> frozenset[str]:
        return frozenset().union(*(t.needs for t in self.terms.values()))

    @property
    def teacher_layers(self) -> list[int]:
        return [j for t in self.terms.values() for j in t.teacher_layers]

    @property
    def student_hidden(self) -> bool:
        return any(t.student_hidden for t in self.terms.values())

    def bind(self, student, teacher) -> WeightedSum:
        for t in self.terms.values():
            t.bind(student, teacher)
        return self

    def forward(self, out: StepOutputs) -> dict[str, torch.Tensor]:
        parts, total, start = {}, None, 0
        for name, term in self.terms.items():
            view, n = out, len(term.teacher_layers)
            if n:  # this term's layers in the stacked teacher hidden states
                view = StepOutputs(out.logits, out.labels, out.hidden, out.teacher_logits,
                                   out.teacher_hidden[:, start:start + n], out.ce_weight)
                start += n
            parts[name] = term(view)
            weighted = parts[name] if term.weight == 1.0 else term.weight * parts[name]
            total = weighted if total is None else total + weighted
        parts["loss"] = total
        return parts


def build_loss(terms_cfg, student, teacher) -> WeightedSum:
    """The method's ``loss:`` mapping (name -> term config with ``_target_``), instantiated and bound."""
    import hydra

    terms = {name: hydra.utils.instantiate(spec) for name, spec in terms_cfg.items()}
    return WeightedSum(terms).bind(student, teacher)


def legacy_terms(method: dict) -> dict:
    """The terms the fixed formula used for a method's α, T, β and layer map (non-zero weights only).
    A config whose ``loss`` lists exactly these is the same job as before terms existed, so
    ``pipeline.run_hash`` leaves its ``loss`` out: cached results keep their identity."""
    terms = {"ce": {"_target_": f"{__name__}.CrossEntropy", "weight": 1.0}}
    if method.get("alpha", 0) > 0:
        terms["kd"] = {"_target_": f"{__name__}.SoftTargetKL", "weight": method["alpha"],
                       "temperature": method.get("temperature", 1.0)}
    if method.get("beta", 0) > 0:
        terms["lwd"] = {"_target_": f"{__name__}.HiddenStateMSE", "weight": method["beta"],
                        "layer_map": method.get("layer_map")}
    return terms


def active_terms(loss: dict) -> dict:
    return {name: spec for name, spec in (loss or {}).items() if spec.get("weight", 1.0) != 0}


def distillation_loss(logits, labels, teacher_logits=None, alpha: float = 0.0, temperature: float = 1.0,
                      hidden_loss: torch.Tensor | None = None, beta: float = 0.0,
                      ce_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The fixed formula the terms replace (reference for tests). ``ce_weight``: per-row CE weights."""
    ce = weighted_ce(logits, labels, ce_weight)
    out = {"ce": ce, "loss": ce}
    if teacher_logits is not None and alpha > 0:
        out["kd"] = kd_loss(logits, teacher_logits, temperature)
        out["loss"] = out["loss"] + alpha * out["kd"]
    if hidden_loss is not None and beta > 0:
        out["lwd"] = hidden_loss
        out["loss"] = out["loss"] + beta * hidden_loss
    return out
