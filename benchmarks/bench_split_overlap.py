"""How close is each validation and test text to its nearest training-pool text? A validation split
carved from a training file full of near-copies (SST-2's sub-phrases of the same parse trees, CoLA's
minimal pairs) measures the training pool's neighbourhood, not the test set: its scores, and any
choice made on it, need not carry over to test.

Similarity: Jaccard of word unigram+bigram sets, lower-cased; the nearest pool text per query.

    python benchmarks/bench_split_overlap.py [--datasets rotten_tomatoes,tweets] [overrides…]
    python benchmarks/bench_split_overlap.py --datasets local dataset.source.path=data/train.tsv
    python benchmarks/bench_split_overlap.py --datasets cola_local --students /tmp/cola_students --k 16

``--students DIR``: students saved by a sweep (``save_student=true``, subdir
``${dataset.name}/${augment.name}/k${k}/seed${seed}``) are scored on the held-out validation texts,
split by whether a near-copy exists in the pool: is CoD's gain over KD where the near-copies are?
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import compose, md_table, use_local_glue, write


def grams(text: str) -> set[str]:
    w = text.lower().split()
    return set(w) | {a + " " + b for a, b in zip(w, w[1:])}


class NearestJaccard:
    """The training pool's gram matrix, built once; called with queries, each query's largest
    Jaccard similarity to any pool text (sparse, in query chunks)."""

    def __init__(self, pool: list[str]):
        import scipy.sparse as sp

        self.vocab: dict[str, int] = {}
        r, c, self.psize = self._entries(pool, grow=True)
        self.P = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(pool), len(self.vocab))).T.tocsr()

    def _entries(self, texts: list[str], grow: bool):
        rows, cols, sizes = [], [], []
        for r, t in enumerate(texts):
            g = grams(t)
            sizes.append(len(g))
            for x in g:
                j = self.vocab.setdefault(x, len(self.vocab)) if grow else self.vocab.get(x)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
        return rows, cols, np.asarray(sizes, dtype=np.float64)

    def __call__(self, queries: list[str], chunk: int = 256) -> np.ndarray:
        import scipy.sparse as sp

        r, c, qsize = self._entries(queries, grow=False)
        Q = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(queries), len(self.vocab)))
        best = np.zeros(len(queries))
        for s in range(0, len(queries), chunk):
            inter = (Q[s:s + chunk] @ self.P).tocoo()  # shared grams, only where some are shared
            jac = inter.data / (qsize[s + inter.row] + self.psize[inter.col] - inter.data)
            np.maximum.at(best, s + inter.row, jac)
        return best


def by_subset(cfg, splits, nearest: NearestJaccard, root: Path, k: int, near_at: float = 0.5) -> list[dict]:
    """CoD − KD per seed on held-out validation, on all of it and on the texts with and without a
    near-copy in the pool, from the saved students of ``root``."""
    from cod_pipeline.evaluation import metrics
    from cod_pipeline.predict import load_student
    from cod_pipeline.stats import paired_gain_by_seed
    from cod_pipeline.student import heldout_positions

    metric = cfg.dataset.primary_metric
    val = splits.validation.iloc[heldout_positions(cfg, splits)]
    y = val["label"].to_numpy()
    near = nearest(val["text"].astype(str).tolist()) >= near_at
    subsets = {"all": np.ones_like(near), "with a near-copy": near, "without one": ~near}
    score: dict[str, dict[str, dict[int, float]]] = {a: {n: {} for n in subsets} for a in ("none", "cod")}
    for aug in score:
        for path in sorted((root / cfg.dataset.name / aug / f"k{k}").glob("seed*/student")):
            pred = load_student(path).predict_proba(val["text"].tolist(), 128).argmax(-1)
            for name, m in subsets.items():
                score[aug][name][int(path.parent.name[4:])] = 100 * metrics(y[m], pred[m], splits.num_classes)[metric]
    rows = []
    for name, m in subsets.items():
        g = paired_gain_by_seed(score["cod"][name], score["none"][name])
        kd = score["none"][name]
        rows.append({"held-out validation": name, "texts": int(m.sum()),
                     f"KD {metric}": f"{sum(kd.values()) / max(1, len(kd)):.1f}",
                     "CoD − KD [95% t CI] wins": f"{g['mean']:+.1f} [{g['lo']:+.1f}, {g['hi']:+.1f}] {g['wins']}/{g['n']}"})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="rotten_tomatoes,tweets,subjectivity,sst2_local,cola_local")
    ap.add_argument("--students", type=Path, default=None, help="a sweep folder of saved students")
    ap.add_argument("--k", type=int, default=16, help="the students' k")
    ap.add_argument("extra", nargs="*", help="more overrides (dataset=local's path, …)")
    args = ap.parse_args()
    use_local_glue()
    from cod_pipeline.pipeline import prepare

    rows, students = [], []
    for ds in args.datasets.split(","):
        cfg = compose([f"dataset={ds}", "logger=none", f"k={args.k}", *args.extra], f"bench_split_overlap/{ds}")
        splits, _ = prepare(cfg)
        nearest = NearestJaccard(splits.train["text"].astype(str).tolist())
        if args.students and (args.students / cfg.dataset.name).is_dir():
            students += [{"dataset": ds, **r} for r in by_subset(cfg, splits, nearest, args.students, args.k)]
        for name, df in (("validation", splits.validation), ("test", splits.test)):
            best = nearest(df["text"].astype(str).tolist())
            rows.append({"dataset": ds, "split": name, "texts": len(best), "pool": len(splits.train),
                         "nearest Jaccard, mean": f"{best.mean():.2f}",
                         "share ≥ 0.5": f"{(best >= 0.5).mean():.2f}", "share ≥ 0.7": f"{(best >= 0.7).mean():.2f}"})
    write("bench_split_overlap", "Near-copies of the training pool in the validation and test splits",
          "Each text's nearest training-pool text by Jaccard similarity of word unigram+bigram sets. Where "
          "validation has many near-copies and test few, validation reads the pool's neighbourhood.\n\n"
          + md_table(rows) + (f"\n\n## CoD − KD by subset, k={args.k} students of `{args.students}`\n\n"
                              + md_table(students) if students else ""))


if __name__ == "__main__":
    main()
