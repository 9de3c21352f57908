"""Teacher and student LightningModules. Both score validation with one ``val/score``
(accuracy, or agreement with the teacher), which the checkpoint callback selects on."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from transformers import get_linear_schedule_with_warmup

from cod_pipeline.evaluation import selection_score
from cod_pipeline.losses import StepOutputs, WeightedSum, weighted_ce
from cod_pipeline.models.backbone import Classifier


class ClassifierModule(pl.LightningModule):
    """Shared optimisation and validation: AdamW with linear warm-up/decay over the planned steps."""

    def __init__(self, model: Classifier, lr: float, weight_decay: float = 0.01, warmup_ratio: float = 0.1,
                 total_steps: int = 100, val_target: str = "label", head_lr: float | None = None,
                 freeze_embeddings: bool = False, val_metric: str = "accuracy"):
        super().__init__()
        self.model, self.lr, self.weight_decay = model, lr, weight_decay
        self.head_lr = head_lr or lr  # a fresh head learns faster than a pretrained backbone may move
        if freeze_embeddings:  # few-shot: keep the pretrained vocabulary geometry
            for p in model.backbone.get_input_embeddings().parameters():
                p.requires_grad_(False)
        self.warmup_ratio, self.total_steps, self.val_target = warmup_ratio, total_steps, val_target
        self.val_metric = val_metric  # the dataset's primary metric: on CoLA accuracy rewards the majority class
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def configure_optimizers(self):
        groups: dict[tuple[float, float], list] = {}  # few groups: AdamW's foreach kernels work per group
        for n, p in self.named_parameters():
            if p.requires_grad:
                key = (self.lr if n.startswith("model.backbone.") else self.head_lr,
                       self.weight_decay if p.ndim > 1 else 0.0)
                groups.setdefault(key, []).append(p)
        opt = torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
                                lr=self.lr)
        sched = get_linear_schedule_with_warmup(opt, int(self.warmup_ratio * self.total_steps), self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def validation_step(self, batch, _):
        logits, _ = self.model(batch["input_ids"], batch["attention_mask"])
        target = batch["t_pred"] if self.val_target == "teacher" else batch["labels"]
        self._val.append((logits.argmax(-1), target))

    def on_validation_epoch_end(self):
        if self._val:
            pred, target = (torch.cat(x).cpu().numpy() for x in zip(*self._val))
            score = selection_score(pred, target, self.model.head.out_features, self.val_metric)
            self.log("val/score", torch.tensor(score, dtype=torch.float32), prog_bar=True)
        self._val.clear()


def check_finite(loss, step: int, who: str, parts: dict | None = None) -> None:
    """Stop the fit at the first NaN/inf training loss: what follows would train on garbage."""
    if torch.isfinite(loss).all():
        return
    from cod_pipeline.validation import TrainingDiverged

    bad = [k for k, v in (parts or {}).items() if k != "loss" and not torch.isfinite(v).all()]
    hint = ("model.teacher_training.lr" if who == "teacher" else
            "method.alpha/temperature/beta and model.student_training.lr/head_lr")
    raise TrainingDiverged(f"{who} training loss became {float(loss.detach())} at step {step}"
                           f"{' (' + ', '.join(bad) + ')' if bad else ''}: stopped, nothing was cached "
                           f"or written as a result (check {hint})")


def check_outputs(model: torch.nn.Module, who: str, *outputs: torch.Tensor) -> None:
    """After a fit and before any metric, cache or file: a finite loss can still leave NaN
    weights (one huge step) whose every prediction is NaN, scored as a class by argmax."""
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if not bad and all(torch.isfinite(o).all() for o in outputs):
        return
    from cod_pipeline.validation import TrainingDiverged

    what = f"{len(bad)} weight tensors (first: {bad[0]})" if bad else "its predictions"
    hint = "model.teacher_training.lr" if who == "teacher" else "model.student_training.lr/head_lr"
    raise TrainingDiverged(f"{who}: {what} are not finite after training: nothing was cached or written "
                           f"as a result (check {hint})")


class TeacherModule(ClassifierModule):
    def training_step(self, batch, _):
        logits, _ = self.model(batch["input_ids"], batch["attention_mask"])
        loss = weighted_ce(logits, batch["labels"])
        self.log("train/loss", loss, prog_bar=True)
        check_finite(loss, self.global_step, "teacher")
        return loss


class StudentModule(ClassifierModule):
    """The student trained on a :class:`~cod_pipeline.losses.WeightedSum` of loss terms (CE, KD,
    hidden-state MSE, ...). The teacher outputs the terms need come cached in the batch
    (``t_logits`` / ``t_hidden``); with ``teacher`` set they are recomputed every step instead."""

    def __init__(self, model: Classifier, loss: WeightedSum, teacher: Classifier | None = None, **kw):
        super().__init__(model, **kw)
        self.loss = loss  # a registered submodule: term parameters (projections) train with the student
        # not a registered submodule: frozen, not optimised, not checkpointed
        object.__setattr__(self, "teacher", teacher)

    def on_fit_start(self):
        if self.teacher is not None:
            self.teacher.to(self.device)

    def on_fit_end(self):
        if self.teacher is not None:
            self.teacher.to("cpu")

    def teacher_outputs(self, batch):
        if self.teacher is None:
            return batch.get("t_logits"), batch.get("t_hidden")
        ti, layers = batch["teacher_inputs"], self.loss.teacher_layers
        self.teacher.eval()
        with torch.no_grad():
            t_logits, t_hs = self.teacher(ti["input_ids"], ti["attention_mask"], hidden=bool(layers))
        return t_logits, torch.stack([t_hs[j] for j in layers], 1) if layers else None

    def training_step(self, batch, _):
        logits, hs = self.model(batch["input_ids"], batch["attention_mask"], hidden=self.loss.student_hidden)
        t_logits, t_hidden = self.teacher_outputs(batch)
        losses = self.loss(StepOutputs(logits, batch["labels"], hs, t_logits, t_hidden, batch.get("ce_weight")))
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=len(logits))
        check_finite(losses["loss"], self.global_step, "student", losses)
        return losses["loss"]
