"""Boundary proximity on text: the teacher's margin on originals, on the run's CFEs, on other generators' CFEs
found in the cache, and on random edits of the same size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def margins(probs: np.ndarray) -> np.ndarray:
    p = np.sort(np.asarray(probs), axis=-1)
    return p[:, -1] - p[:, -2]


def proximity_table(groups: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for name, m in groups.items():
        if len(m):
            rows.append({"set": name, "n": len(m), "margin_mean": float(np.mean(m)), "margin_std": float(np.std(m)),
                         "margin_median": float(np.median(m)), "share_within_0.2": float(np.mean(m < 0.2))})
    return pd.DataFrame(rows)


def write_proximity(groups: dict[str, np.ndarray], out_dir: Path) -> pd.DataFrame:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    table = proximity_table(groups)
    table.to_csv(out_dir / "proximity.csv", index=False)
    lines = ["| set | n | margin mean ± std | median | share < 0.2 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r.set} | {r.n} | {r.margin_mean:.3f} ± {r.margin_std:.3f} | {r.margin_median:.3f} | "
              f"{r._6:.2f} |" for r in table.itertuples()]
    (out_dir / "proximity.md").write_text("Teacher margin (top-1 − top-2 probability; 0 = on the boundary)\n\n"
                                          + "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0, 1, 21)
    for name, m in groups.items():
        if len(m):
            ax.hist(m, bins=bins, alpha=0.5, label=f"{name} (n={len(m)})", density=True)
    ax.set_xlabel("teacher margin |p₁ − p₂|")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "proximity.png", dpi=120)
    plt.close(fig)
    return table


def run_proximity(cfg, splits, sampler, teacher) -> pd.DataFrame:
    """The CFEs a CoD run at this k and seed uses, against the originals, LLM CFEs and random edits."""
    from cod_pipeline.counterfactuals.pairing import generate_for_draw
    from cod_pipeline.counterfactuals.random_edit import random_edits
    from cod_pipeline.counterfactuals.store import CFEStore
    from cod_pipeline.counterfactuals.textclean import edited_words

    pairs, _, _ = generate_for_draw(cfg, splits, sampler, teacher, cfg.k // 2)
    recs = [r for _, r in pairs]
    originals = np.array([r["orig_probs"] for r in recs])
    edits = [max(1, edited_words(r["original"], r["cfe"])) for r in recs]
    rand = teacher.probs(random_edits([r["original"] for r in recs], edits, cfg.seed, cfg.dataset.task))
    store = CFEStore(Path(cfg.paths.cache_dir) / "cfe.sqlite", cfg.paths.get("shared_fs"))
    mine = recs[0]["generator"] if recs else cfg.cfe.name  # the generator the record names, not its option's name
    other = [r for r in store.all(dataset=cfg.dataset.name, teacher_id=teacher.id)
             if r.get("generator") != mine and r.get("valid")]
    names = sorted({r.get("generator") for r in other})
    groups = {"originals": margins(originals), f"{mine} CFEs (this run)": margins(np.array([r["cfe_probs"] for r in recs])),
              "random edits (same size)": margins(rand),
              f"other generators' CFEs in the cache ({', '.join(names) or 'none'})":
                  margins(np.array([r["cfe_probs"] for r in other])) if other else np.array([])}
    return write_proximity(groups, Path(cfg.paths.output_dir))
