"""Teacher and student LightningModules. Both score validation with one ``val/score``
(accuracy, or agreement with the teacher), which the checkpoint callback selects on."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from transformers import get_linear_schedule_with_warmup

from cod_pipeline.losses import LayerProjections, distillation_loss
from cod_pipeline.models.backbone import Classifier


class ClassifierModule(pl.LightningModule):
    """Shared optimisation and validation: AdamW with linear warm-up/decay over the planned steps."""

    def __init__(self, model: Classifier, lr: float, weight_decay: float = 0.01, warmup_ratio: float = 0.1,
                 total_steps: int = 100, val_target: str = "label", head_lr: float | None = None,
                 freeze_embeddings: bool = False):
        super().__init__()
        self.model, self.lr, self.weight_decay = model, lr, weight_decay
        self.head_lr = head_lr or lr  # a fresh head learns faster than a pretrained backbone may move
        if freeze_embeddings:  # few-shot: keep the pretrained vocabulary geometry
            for p in model.backbone.get_input_embeddings().parameters():
                p.requires_grad_(False)
        self.warmup_ratio, self.total_steps, self.val_target = warmup_ratio, total_steps, val_target
        self._val_hits: list[torch.Tensor] = []

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
        self._val_hits.append((logits.argmax(-1) == target).float())

    def on_validation_epoch_end(self):
        if self._val_hits:
            self.log("val/score", torch.cat(self._val_hits).mean(), prog_bar=True)
        self._val_hits.clear()


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


class TeacherModule(ClassifierModule):
    def training_step(self, batch, _):
        logits, _ = self.model(batch["input_ids"], batch["attention_mask"])
        loss = distillation_loss(logits, batch["labels"])["loss"]
        self.log("train/loss", loss, prog_bar=True)
        check_finite(loss, self.global_step, "teacher")
        return loss


class StudentModule(ClassifierModule):
    """CE on labels (+ α·KD to the teacher's soft labels, + β·layer-wise MSE). Teacher outputs
    come cached in the batch; with ``teacher`` set they are recomputed every step instead."""

    def __init__(self, model: Classifier, alpha: float = 0.0, temperature: float = 1.0, beta: float = 0.0,
                 layer_map: list[tuple[int, int]] | None = None, teacher_width: int | None = None,
                 teacher: Classifier | None = None, **kw):
        super().__init__(model, **kw)
        self.alpha, self.temperature, self.beta = alpha, temperature, beta
        self.layer_map = [tuple(p) for p in (layer_map or [])]
        self.projections = (LayerProjections(len(self.layer_map), model.width, teacher_width)
                            if self.layer_map and beta > 0 else None)
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
        ti = batch["teacher_inputs"]
        self.teacher.eval()
        with torch.no_grad():
            t_logits, t_hs = self.teacher(ti["input_ids"], ti["attention_mask"], hidden=self.projections is not None)
        t_hidden = torch.stack([t_hs[j] for _, j in self.layer_map], 1) if self.projections is not None else None
        return t_logits, t_hidden

    def training_step(self, batch, _):
        need_hidden = self.projections is not None
        logits, hs = self.model(batch["input_ids"], batch["attention_mask"], hidden=need_hidden)
        t_logits, t_hidden = self.teacher_outputs(batch)
        hidden_loss = self.projections([hs[i] for i, _ in self.layer_map], t_hidden) if need_hidden else None
        losses = distillation_loss(logits, batch["labels"], t_logits, self.alpha, self.temperature,
                                   hidden_loss, self.beta, batch.get("ce_weight"))
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=len(logits))
        check_finite(losses["loss"], self.global_step, "student", losses)
        return losses["loss"]
