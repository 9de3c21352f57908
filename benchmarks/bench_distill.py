"""Student distillation throughput: teacher outputs cached once per run (default) vs a teacher
forward at every step with validation every epoch (the official scripts' loop). Same seed,
same number of optimizer steps, one process. Target: ≥ 2× faster with equal metrics.

Then the distance to the student's own speed limit: the pipeline's fit without validation
(Lightning Trainer, collate and tokenization per step, logging) against a bare loop of forward,
loss terms, backward and AdamW step over the same batches, tokenized beforehand. Target ≤ 1.2×."""
from __future__ import annotations

import argparse
import time

from common import compose, md_table, write


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()

    from omegaconf import open_dict

    from cod_pipeline.augment import original_rows
    from cod_pipeline.evaluation import metrics
    from cod_pipeline.models.backbone import predict
    from cod_pipeline.pipeline import prepare
    from cod_pipeline.student import train_student
    from cod_pipeline.teacher import ensure_teacher

    cfg = compose([f"k={args.k}", f"seed={args.seed}", "logger=none", "compare=[]",
                   f"model.student_training.min_steps={args.steps}", f"model.student_training.max_steps={args.steps}"],
                  "bench_distill")
    splits, sampler = prepare(cfg)
    teacher = ensure_teacher(cfg, splits)
    rows_base = original_rows(splits, sampler.draw(args.k))
    # the official loop validates every epoch (here one epoch = k/batch steps)
    per_epoch = max(1, args.k // cfg.model.student_training.batch_size)
    st = cfg.model.student_training
    variants = [  # (name, per-step teacher, validate every n steps, validation rows)
        ("cached teacher outputs (default)", False, st.eval_every, st.val_size),
        ("teacher forward every step, same validation", True, st.eval_every, st.val_size),
        ("official loop: teacher every step + full validation every epoch", True, per_epoch, len(splits.validation)),
    ]
    rows = []
    for name, per_step, eval_every, val_size in variants:
        with open_dict(cfg):
            cfg.method.teacher_forward_every_step = per_step
            cfg.model.student_training.eval_every = eval_every
            cfg.model.student_training.val_size = val_size
        t0 = time.perf_counter()
        student, info = train_student(cfg, splits, teacher, [dict(r) for r in rows_base])
        wall = time.perf_counter() - t0
        logits, _ = predict(student, splits.test["text"].tolist(), 128)
        m = metrics(splits.test["label"].to_numpy(), logits.argmax(-1).numpy(), splits.num_classes,
                    teacher_pred=teacher.test_probs.argmax(-1))
        samples = info["steps"] * cfg.model.student_training.batch_size
        rows.append({"variant": name, "steps": info["steps"], "val checks × rows": f"{info['steps'] // eval_every} × {val_size}",
                     "wall s": f"{wall:.1f}", "train samples/s": f"{samples / wall:.1f}",
                     "test acc": f"{100 * m['accuracy']:.1f}", "agreement": f"{100 * m['agreement']:.1f}"})
    with open_dict(cfg):
        cfg.method.teacher_forward_every_step = False
        cfg.model.student_training.selection = "last"
    _, info = train_student(cfg, splits, teacher, [dict(r) for r in rows_base])
    fit_s, bare_s = info["fit_s"], bare_steps(cfg, splits, teacher, rows_base, args.steps)
    walls = [float(r["wall s"]) for r in rows]
    body = (f"Embedded minilm pair, rotten_tomatoes, k={args.k}, seed={args.seed}, {args.steps} optimizer "
            f"steps, batch {st.batch_size}, KD α={cfg.method.alpha}, T={cfg.method.temperature}; one process, "
            f"same seed and draw. Test = the fixed {len(splits.test)}-snippet test split.\n\n{md_table(rows)}\n\n"
            f"Speed-up of the default over the official loop: **{walls[2] / walls[0]:.2f}×** (target ≥ 2×); "
            f"over a per-step teacher with the same validation: {walls[1] / walls[0]:.2f}× (the teacher forward "
            f"alone: {(walls[1] - walls[0]) / args.steps * 1000:.0f} ms per step on top of "
            f"{walls[0] / args.steps * 1000:.0f} ms for the student's step and its validation).\n\n"
            f"## The student's own speed limit\n\n| loop ({args.steps} steps, no validation) | s | ms / step |\n"
            f"|---|---|---|\n| pipeline: `trainer.fit` (collate + tokenize per step, Lightning, logging) | "
            f"{fit_s:.1f} | {fit_s / args.steps * 1000:.0f} |\n| bare: forward + loss terms + backward + AdamW "
            f"step, batches tokenized beforehand | {bare_s:.1f} | {bare_s / args.steps * 1000:.0f} |\n\n"
            f"Pipeline / bare: **{fit_s / bare_s:.2f}×** (target ≤ 1.2×).\n")
    write("bench_distill", "Student distillation throughput", body)


def bare_steps(cfg, splits, teacher, rows, steps: int) -> float:
    """Seconds for ``steps`` plain optimizer steps of the same student, loss and batches."""
    import torch

    from cod_pipeline.data.datamodule import Collate, FewShotDataModule
    from cod_pipeline.losses import StepOutputs, build_loss
    from cod_pipeline.models.lightning import StudentModule
    from cod_pipeline.student import build_student, with_teacher_outputs

    st = cfg.model.student_training
    torch.manual_seed(cfg.seed)
    student = build_student(cfg, splits)
    loss = build_loss(cfg.method.loss, student, teacher.model)
    rows = with_teacher_outputs([dict(r) for r in rows], teacher.model, loss, st.eval_batch_size)
    dm = FewShotDataModule(rows, [], Collate(student.tokenize), st.batch_size, st.eval_batch_size, cfg.seed)
    batches = []
    while len(batches) < steps:
        batches += list(dm.train_dataloader())
    module = StudentModule(student, loss, lr=st.lr, weight_decay=st.weight_decay, warmup_ratio=st.warmup_ratio,
                           total_steps=steps, head_lr=st.get("head_lr"), freeze_embeddings=st.get("freeze_embeddings", False))
    opt = module.configure_optimizers()
    optimizer, sched = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    module.train()
    t0 = time.perf_counter()
    for b in batches[:steps]:
        logits, hs = student(b["input_ids"], b["attention_mask"], hidden=loss.student_hidden)
        out = loss(StepOutputs(logits, b["labels"], hs, b.get("t_logits"), b.get("t_hidden"), b.get("ce_weight")))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        sched.step()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
