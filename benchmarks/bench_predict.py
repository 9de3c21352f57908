"""The pipeline's own inference loop (`models.backbone.predict`: length-sorted batches, no
Trainer) against Lightning's `trainer.predict` on the same model and texts, for the two ways the
pipeline calls it: one large call (a test split) and many small ones (the CFE search scores a few
dozen candidate texts per call, hundreds of times per original)."""
from __future__ import annotations

import time

from common import ROOT, md_table, write  # noqa: F401 (ROOT: puts the repo on sys.path)


def predict_module(model):
    """``model`` as a LightningModule whose ``predict_step`` returns its logits."""
    import pytorch_lightning as pl

    class PredictModule(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def predict_step(self, batch, batch_idx):
            return self.model(batch["input_ids"], batch["attention_mask"])[0]

    return PredictModule()


def lightning_predict(model, texts, batch_size):
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(texts, batch_size=batch_size, collate_fn=model.tokenize)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    return torch.cat(trainer.predict(predict_module(model), loader))


def timed(fn, repeat: int):
    """Mean seconds per call over ``repeat`` calls, and the last call's output."""
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - t0) / repeat, out


def main():
    import logging

    import torch
    from common import compose

    from cod_pipeline.data import load_splits
    from cod_pipeline.models.backbone import predict
    from cod_pipeline.student import build_student

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    cfg = compose([])
    splits = load_splits(cfg.dataset)
    model = build_student(cfg, splits).eval()
    texts = splits.test["text"].tolist()
    rows = []
    for what, batch, repeat, bs in (("test split, one call", texts, 1, 128), ("48 candidates, one search call", texts[:48], 20, 64)):
        ours, a = timed(lambda: predict(model, batch, bs)[0], repeat)
        theirs, b = timed(lambda: lightning_predict(model, batch, bs), repeat)
        rows.append({"call": f"{what} ({len(batch)} texts, batch {bs})", "predict() s": f"{ours:.3f}",
                     "trainer.predict s": f"{theirs:.3f}", "ratio": f"{theirs / ours:.2f}×",
                     "max abs Δ logit": f"{(a - b).abs().max().item():.1e}"})
    body = (f"minilm student (3 layers), rotten_tomatoes test texts, CPU, {torch.get_num_threads()} threads.\n\n"
            f"{md_table(rows)}\n\n`predict()` sorts texts by length (less padding): that is the gain on a large call. "
            "On a search-sized call the two are within a few percent: the Trainer's setup costs little there.\n")
    write("bench_predict", "Inference: the pipeline's predict() against trainer.predict", body)


if __name__ == "__main__":
    main()
