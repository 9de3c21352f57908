"""Training rows for the CFE-based augments, at an exact budget of k: k/2 originals and
k/2 partners, each pair sharing a ``group`` so it lands in one mini-batch.

- ``cod``: teacher-validated minimal-edit CFEs, labelled by the teacher's prediction;
- ``cod_unvalidated``: the generator's proposal as is, labelled 1 − gold (the official code);
- ``random_edit``: random edits of the same size, labelled by the teacher, not validated.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from cod_pipeline import ConfigError
from cod_pipeline.cache import config_hash
from cod_pipeline.counterfactuals.generate import CFEGeneration, Gate
from cod_pipeline.counterfactuals.generators import LOCAL_SERVER_KEYS, build_generator
from cod_pipeline.counterfactuals.quality import summarize, write_samples
from cod_pipeline.counterfactuals.store import CFEStore

log = logging.getLogger(__name__)


OPERATIONAL = ("max_in_flight", "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s", "api_key_env",
               "base_url", "chunk_size", "max_tries_per_class", *LOCAL_SERVER_KEYS)


def cfe_identity(cfe: DictConfig) -> str:
    """Hash of every cfe setting that changes which CFEs come out (not how fast they come)."""
    c = OmegaConf.to_container(cfe, resolve=True)
    for sub in (c, c.get("llm") or {}):
        for k in OPERATIONAL:
            sub.pop(k, None)
    return config_hash(c, 8)


def make_generation(cfg: DictConfig, splits, teacher) -> CFEGeneration:
    gen = build_generator(cfg.cfe, cfg.dataset.task)
    gen.prompt_version = f"{gen.prompt_version}-{cfe_identity(cfg.cfe)}"
    getattr(gen, "check", lambda: None)()
    store = CFEStore(Path(cfg.paths.cache_dir) / "cfe.sqlite")
    gate = Gate(cfg.cfe.max_edit_distance, min_margin=cfg.cfe.get("min_margin", 0.0))
    return CFEGeneration(store, gen, gate, cfg.dataset.name, teacher.id,
                         lambda texts: teacher.probs(list(texts)), splits.label_names,
                         max_attempts=cfg.cfe.max_attempts, target=cfg.cfe.get("target"),
                         chunk_size=cfg.cfe.get("chunk_size", 16))


def generate_for_draw(cfg: DictConfig, splits, sampler, teacher, n_pairs: int):
    """CFEs for the first n_pairs originals of the seeded draw, replacing failures with the
    next originals of the same class; writes the quality figures and samples."""
    t0 = time.time()
    generation = make_generation(cfg, splits, teacher)
    per_class = n_pairs // splits.num_classes
    orders = [list(idx) for idx in sampler.per_class]
    with generation.gen.session():
        pairs, failed = generation.pairs(splits.train, orders, per_class, cfg.cfe.get("max_tries_per_class"))
    got = len(pairs)
    if got < n_pairs:
        raise ConfigError(f"only {got} of {n_pairs} originals got a valid CFE after {got + len(failed)} tries "
                          f"(cfe={cfg.cfe.name}); relax cfe.max_edit_distance or use another generator")
    records = [rec for _, rec in pairs]
    quality = summarize(records + failed, time.time() - t0)
    quality.update({"generator": generation.gen.name, "llm_model": generation.gen.llm_model,
                    "replaced_originals": len(failed), "cache": dict(generation.stats),
                    "llm_calls_this_run": generation.stats["llm_calls"]})
    out = Path(cfg.paths.output_dir)
    quality["samples_file"] = str(write_samples(records + failed, out / "cfe_samples.md", splits.label_names))
    quality["samples"] = [{k: r[k] for k in ("original", "cfe", "orig_probs", "cfe_probs")} for r in records[:10]]
    log.info("CFEs: %d valid for %d originals tried (validity %.2f), mean edit distance %s, %s",
             len(records), len(records) + len(failed), quality["validity"], quality["edit_distance_mean"],
             dict(generation.stats))
    return pairs, quality


def paired_rows(cfg: DictConfig, splits, sampler, teacher) -> tuple[list[dict], dict]:
    kind = cfg.augment.name
    n_pairs = cfg.k // 2
    if kind in ("cod", "cod_unvalidated"):
        pairs, quality = generate_for_draw(cfg, splits, sampler, teacher, n_pairs) if kind == "cod" else \
            _unvalidated(cfg, splits, sampler, teacher, n_pairs)
        rows = []
        for g, (pos, rec) in enumerate(pairs):
            gold = int(splits.train.iloc[pos]["label"])
            partner_label = rec["cfe_label"] if kind == "cod" else 1 - gold
            partner = rec["cfe"] if kind == "cod" else rec["candidate"]
            rows.append({"id": rec["sample_id"], "text": rec["original"], "label": gold, "group": g, "is_cfe": False})
            rows.append({"id": rec["sample_id"] + ":cfe", "text": partner, "label": int(partner_label), "group": g,
                         "is_cfe": True})
        return rows, quality
    if kind == "random_edit":
        from cod_pipeline.counterfactuals.search import random_edits

        idx = sampler.draw(n_pairs)
        df = splits.train.iloc[list(idx)]
        edited = random_edits(df["text"].tolist(), [cfg.augment.n_edits] * len(df), cfg.seed, cfg.dataset.task)
        probs = teacher.probs(edited)
        rows = []
        for g, (sid, text, y, e, p) in enumerate(zip(df["id"], df["text"], df["label"], edited, probs)):
            rows.append({"id": sid, "text": text, "label": int(y), "group": g, "is_cfe": False})
            rows.append({"id": sid + ":rand", "text": e, "label": int(p.argmax()), "group": g, "is_cfe": True})
        orig_pred = teacher.probs(df["text"].tolist()).argmax(-1)
        return rows, {"generator": "random_edit", "n_edits": cfg.augment.n_edits,
                      "teacher_flip_rate": float(np.mean(orig_pred != probs.argmax(-1)))}
    raise ConfigError(f"unknown augment {kind!r}")


def _unvalidated(cfg, splits, sampler, teacher, n_pairs):
    """The generator's first proposal, whatever the teacher says of it; originals with no
    proposal at all are replaced by the next draw of their class."""
    if splits.num_classes != 2:
        raise ConfigError("augment=cod_unvalidated labels CFEs 1 − gold, which needs a binary task")
    generation = make_generation(cfg, splits, teacher)
    with generation.gen.session():
        pairs, _ = generation.pairs(splits.train, [list(o) for o in sampler.per_class], n_pairs // splits.num_classes,
                                    cfg.cfe.get("max_tries_per_class"), accept=lambda rec: bool(rec.get("first_candidate")))
    if len(pairs) < n_pairs:
        raise ConfigError(f"only {len(pairs)} of {n_pairs} originals got any proposal from cfe={cfg.cfe.name}")
    for _, rec in pairs:
        rec["candidate"] = rec["first_candidate"]
    return pairs, summarize([r for _, r in pairs])
