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
from cod_pipeline.augment import n_originals
from cod_pipeline.cache import config_hash
from cod_pipeline.counterfactuals.gate import Gate
from cod_pipeline.counterfactuals.generate import ValidatedCFEs
from cod_pipeline.counterfactuals.generators import build_generator, identity
from cod_pipeline.counterfactuals.quality import sample_rows, summarize, write_samples
from cod_pipeline.counterfactuals.random_edit import random_edits
from cod_pipeline.counterfactuals.store import CFEStore

log = logging.getLogger(__name__)


def cfe_identity(cfe: DictConfig) -> str:
    """Hash of every cfe setting that changes which CFEs come out (not how fast they come): the node
    without its layout keys and its ``runtime`` subtree (``generators.identity``)."""
    return config_hash(identity(cfe), 8)


def make_generation(cfg: DictConfig, splits, teacher) -> ValidatedCFEs:
    template = cfg.dataset.get("label_template") or "{}"
    gen = build_generator(cfg.cfe, cfg.dataset.task, [template.format(n) for n in splits.label_names])
    gen.prompt_version = f"{gen.prompt_version}-{cfe_identity(cfg.cfe)}"
    getattr(gen, "check", lambda: None)()
    if gen.pool_size:  # a generator's own reader learns from the teacher's labels of pool text, when first needed
        from cod_pipeline.counterfactuals.pool import teacher_pool

        gen.pool_loader = lambda: teacher_pool(cfg, splits, teacher, gen.pool_size)
    store = CFEStore(Path(cfg.paths.cache_dir) / "cfe.sqlite", cfg.paths.get("shared_fs"))
    gate = Gate(cfg.cfe.max_edit_distance, min_margin=cfg.cfe.get("min_margin", 0.0),
                free_edit_words=cfg.cfe.get("free_edit_words", 0))
    return ValidatedCFEs(store, gen, gate, cfg.dataset.name, teacher.id,
                         lambda texts: teacher.probs(list(texts)), splits.label_names,
                         max_attempts=cfg.cfe.max_attempts, target=cfg.cfe.get("target"),
                         chunk_size=cfg.cfe.runtime.chunk_size)


#: ``augment.on_failure`` where an augment's YAML leaves it out: conf/augment/cod.yaml's value
ON_FAILURE = "near_flip"


def generate_for_draw(cfg: DictConfig, splits, sampler, teacher, n_pairs: int, policy: str = ON_FAILURE):
    """CFEs for the first n_pairs originals of the seeded draw; writes the quality figures and
    samples. Returns the valid pairs, the failed originals (pool position, record) and quality.

    ``policy=replace`` walks on to the next originals of a class until n_pairs are valid (the
    originals are then filtered toward easily flipped ones); any other policy generates for
    exactly the first n_pairs originals, the same prefix that KD's draw starts with."""
    t0 = time.time()
    generation = make_generation(cfg, splits, teacher)
    with generation.gen.session():
        if policy == "replace":
            pairs, failed = generation.pairs(splits.train, [list(i) for i in sampler.per_class],
                                             n_pairs // splits.num_classes, cfg.cfe.runtime.max_tries_per_class)
            if len(pairs) < n_pairs:
                raise ConfigError(f"only {len(pairs)} of {n_pairs} originals got a valid CFE after "
                                  f"{len(pairs) + len(failed)} tries (cfe={cfg.cfe.name}); relax "
                                  f"cfe.max_edit_distance, use another generator or augment.on_failure=fill")
            failed = [(None, rec) for rec in failed]
        else:
            idx = [int(i) for i in sampler.draw(n_pairs)]
            df = splits.train.iloc[idx]
            recs = generation.records(df["id"].tolist(), df["text"].tolist())
            seen: set[str] = set()
            pairs, failed = [], []
            for pos, sid in zip(idx, df["id"]):
                (pairs if generation.valid_cfe(recs[sid], seen) else failed).append((pos, recs[sid]))
    records = [rec for _, rec in pairs]
    tried = records + [rec for _, rec in failed]
    quality = summarize(tried, time.time() - t0)
    quality.update({"generator": generation.gen.name, "llm_model": generation.gen.llm_model, "policy": policy,
                    "replaced_originals": len(failed) if policy == "replace" else 0,
                    "unpaired_originals": 0 if policy == "replace" else len(failed),
                    "cache": dict(generation.stats), "llm_calls_this_run": generation.stats["llm_calls"]})
    price = (cfg.cfe.get("runtime") or {}).get("usd_per_mtok")
    if price:  # what these CFEs cost when they were generated, at the configured price
        quality["llm_cost_usd"] = round((quality["llm_prompt_tokens"] * float(price[0])
                                         + quality["llm_completion_tokens"] * float(price[1])) / 1e6, 6)
    out = Path(cfg.paths.output_dir)
    quality["samples_file"] = str(write_samples(tried, out / "cfe_samples.md", splits.label_names))
    quality["samples"] = sample_rows(records)
    quality["records"] = tried  # for the judge (judge.measure_cfes consumes it); never saved
    quality["reader_families"] = list(generation.gen.reader_families)  # a judge must be of none of them
    log.info("CFEs: %d valid for %d originals tried (validity %.2f), mean edit distance %.3f, %s",
             len(records), len(tried), quality["validity"] or 0.0, quality["edit_distance_mean"] or float("nan"),
             dict(generation.stats))
    return pairs, failed, quality


def _row(rec_id, text, label, group, is_cfe, ce_weight=None) -> dict:
    row = {"id": rec_id, "text": text, "label": int(label), "group": group, "is_cfe": is_cfe}
    if ce_weight is not None:
        row["ce_weight"] = ce_weight
    return row


def cod_rows(cfg: DictConfig, splits, sampler, teacher) -> tuple[list[dict], dict]:
    """k/2 originals and their CFEs. An original without a valid CFE is handled by
    ``augment.on_failure``: ``near_flip`` pairs it with the search's closest non-flip (labelled by
    the teacher), or fills where there is none; ``fill`` keeps it unpaired and adds the next
    original of its class from KD's own draw, unpaired; ``replace`` swaps it for the next original
    that flips."""
    aug = cfg.augment
    n_pairs, policy = n_originals(cfg), aug.get("on_failure", ON_FAILURE)
    ce_weight = None if aug.get("cfe_loss", "ce_kl") == "ce_kl" else 0.0  # kl: the CFE's hard label is not used
    pairs, failed, quality = generate_for_draw(cfg, splits, sampler, teacher, n_pairs, policy)
    rows = []
    for g, (pos, rec) in enumerate(pairs):
        rows.append(_row(rec["sample_id"], rec["original"], splits.train.iloc[pos]["label"], g, False))
        rows.append(_row(rec["sample_id"] + ":cfe", rec["cfe"], rec["cfe_label"], g, True, ce_weight))
    if policy == "replace":
        return rows, quality
    spare = {c: list(sampler.reserve(n_pairs, c)) for c in range(splits.num_classes)}
    near = 0
    for g, (pos, rec) in enumerate(failed, len(pairs)):
        y = int(splits.train.iloc[pos]["label"])
        rows.append(_row(rec["sample_id"], rec["original"], y, g, False))
        if policy == "near_flip" and rec.get("near"):
            near += 1
            rows.append(_row(rec["sample_id"] + ":near", rec["near"], int(np.argmax(rec["near_probs"])), g, True,
                             ce_weight))
        elif aug.get("refill", True):  # fill: the next original of the same class, as KD would have drawn it
            nxt = splits.train.iloc[spare[y].pop(0)]
            rows.append(_row(nxt["id"], nxt["text"], y, g + len(failed), False))
    quality.update({"near_flips": near, "fill_originals": len(failed) - near})
    return rows, quality


class PairedAugment:
    """A paired augment (``conf/augment/<name>.yaml`` names its class in ``_target_``): k/2 originals
    and k/2 partners, each pair sharing a ``group``. Unpaired augments (``none``, ``half``) are a
    fraction of k originals (``cod_pipeline.augment``) and need no class."""

    uses_generator = False  # does it ask ``cfe`` for CFEs (an LLM endpoint is then checked up front)?

    def rows(self, cfg: DictConfig, splits, sampler, teacher) -> tuple[list[dict], dict]:
        raise NotImplementedError


class CoDPairs(PairedAugment):
    """``cod``: teacher-validated CFEs, an original without one handled by ``augment.on_failure``."""
    uses_generator = True

    def rows(self, cfg, splits, sampler, teacher):
        return cod_rows(cfg, splits, sampler, teacher)


class UnvalidatedPairs(PairedAugment):
    """``cod_unvalidated`` (the official code): the generator's first proposal, labelled 1 − gold."""
    uses_generator = True

    def rows(self, cfg, splits, sampler, teacher):
        pairs, quality = _unvalidated(cfg, splits, sampler, teacher, n_originals(cfg))
        rows = []
        for g, (pos, rec) in enumerate(pairs):
            gold = int(splits.train.iloc[pos]["label"])
            rows.append(_row(rec["sample_id"], rec["original"], gold, g, False))
            rows.append(_row(rec["sample_id"] + ":cfe", rec["candidate"], 1 - gold, g, True))
        return rows, quality


class RandomEditPairs(PairedAugment):
    """``random_edit``: ``augment.n_edits`` random word edits per original, labelled by the teacher."""

    def rows(self, cfg, splits, sampler, teacher):
        idx = sampler.draw(n_originals(cfg))
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


class RetrievedPairs(PairedAugment):
    """``retrieved`` (a control, never a default): each of CoD's originals paired with its nearest
    real text of the unlabelled pool (tf-idf n-gram cosine) that the teacher gives another class.
    Natural text near the boundary, not a minimal edit; it reads pool text CoD does not."""

    def rows(self, cfg, splits, sampler, teacher):
        from cod_pipeline.counterfactuals.pool import teacher_pool
        from cod_pipeline.models.ngram import HashedNgrams

        t0 = time.time()
        idx = [int(i) for i in sampler.draw(n_originals(cfg))]
        df = splits.train.iloc[idx]
        pool = teacher_pool(cfg, splits, teacher, cfg.augment.pool_size)
        originals = df["text"].tolist()
        orig_probs = teacher.probs(originals)
        feats = HashedNgrams()
        pool_x = feats.fit_transform(pool.texts)
        sims = (feats.transform(originals) @ pool_x.T).toarray()
        sims[:, np.isin(pool.positions, idx)] = -np.inf  # never an original of the draw itself
        pool_label = pool.probs.argmax(1)
        rows, records = [], []
        for g, (sid, text, y, p, s) in enumerate(zip(df["id"], originals, df["label"], orig_probs, sims)):
            s = np.where(pool_label != int(p.argmax()), s, -np.inf)
            j = int(np.argmax(s))
            partner, q = pool.texts[j], pool.probs[j]
            rows.append(_row(sid, text, y, g, False))
            rows.append(_row(f"{sid}:retrieved", partner, int(q.argmax()), g, True))
            records.append({"sample_id": sid, "original": text, "orig_probs": p.tolist(), "label": int(p.argmax()),
                            "cfe": partner, "cfe_probs": [float(x) for x in q], "cfe_label": int(q.argmax()),
                            "valid": True, "similarity": float(s[j]), "target": None})
        quality = summarize(records, time.time() - t0)
        quality.update({"generator": "retrieved", "pool_size": len(pool.texts), "records": records,
                        "similarity_mean": float(np.mean([r["similarity"] for r in records])),
                        "samples": sample_rows(records)})
        return rows, quality


def augment_class(aug: DictConfig) -> type[PairedAugment]:
    """The class an augment's ``_target_`` names."""
    from cod_pipeline import target_class

    target = aug.get("_target_")
    if not target:
        raise ConfigError(f"augment={aug.get('name')!r} is paired but names no class (_target_) in its YAML")
    return target_class(target, PairedAugment, "augment")


def paired_rows(cfg: DictConfig, splits, sampler, teacher) -> tuple[list[dict], dict]:
    """The training rows of a paired augment, from the class its YAML names."""
    return augment_class(cfg.augment)().rows(cfg, splits, sampler, teacher)


def _unvalidated(cfg, splits, sampler, teacher, n_pairs):
    """The generator's first proposal, whatever the teacher says of it; originals with no
    proposal at all are replaced by the next draw of their class."""
    if splits.num_classes != 2:
        raise ConfigError("augment=cod_unvalidated labels CFEs 1 − gold, which needs a binary task")
    generation = make_generation(cfg, splits, teacher)
    with generation.gen.session():
        pairs, _ = generation.pairs(splits.train, [list(o) for o in sampler.per_class], n_pairs // splits.num_classes,
                                    cfg.cfe.runtime.max_tries_per_class, accept=lambda rec: bool(rec.get("first_candidate")))
    if len(pairs) < n_pairs:
        raise ConfigError(f"only {len(pairs)} of {n_pairs} originals got any proposal from cfe={cfg.cfe.name}")
    for _, rec in pairs:
        rec["candidate"] = rec["first_candidate"]
    return pairs, summarize([r for _, r in pairs])
