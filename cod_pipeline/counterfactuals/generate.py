"""Teacher-validated CFE generation for a set of originals, through the append-only cache.

For each original: the cache first (no call is paid twice); otherwise the generator
proposes, the teacher scores, the minimality gate judges, and a failed attempt goes back
with feedback (the teacher's label and confidence) up to ``max_attempts``. An original
whose CFE never validates is replaced by the next draw of its class, so the budget stays k.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter

import numpy as np

from cod_pipeline.counterfactuals.gate import Gate
from cod_pipeline.counterfactuals.generators import Generator, Item
from cod_pipeline.counterfactuals.store import CFEKey, CFEStore
from cod_pipeline.counterfactuals.textclean import edited_words, normalized_edit_distance

log = logging.getLogger(__name__)


def _feedback(cand: str | None, probs, label_names, reason: str) -> str:
    if cand is None or probs is None:
        return "Your previous answer was not a usable sentence. Reply with the edited sentence only."
    pred = int(np.argmax(probs))
    if reason == "no_flip":
        return (f'Your previous attempt "{cand}" was still classified as {label_names[pred]} '
                f"(confidence {float(np.max(probs)):.2f}). Make a different minimal edit.")
    if reason == "weak_flip":
        return (f'Your previous attempt "{cand}" was only barely classified as {label_names[pred]} '
                f"(confidence {float(np.max(probs)):.2f}). Make the change clearer, still minimal.")
    if reason == "too_far":
        return f'Your previous attempt "{cand}" changed too much. Change only one or two words.'
    return f'Your previous attempt "{cand}" was rejected ({reason}). Make a different minimal edit.'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ValidatedCFEs:
    """Teacher-validated CFEs for originals of one dataset, one teacher and one generator: each
    is read from the store, or proposed by the generator, scored by the teacher, judged by the gate
    and stored."""

    def __init__(self, store: CFEStore, generator: Generator, gate: Gate, dataset: str, teacher_id: str,
                 scorer, label_names: list[str], max_attempts: int = 3, target: str | None = None,
                 chunk_size: int = 16, claim_ttl_s: float = 600.0):
        self.store, self.gen, self.gate, self.dataset = store, generator, gate, dataset
        self.teacher_id, self.scorer, self.label_names = teacher_id, scorer, label_names
        self.max_attempts, self.target, self.chunk_size = max_attempts, target, chunk_size
        self.claim_ttl_s = claim_ttl_s
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stats = Counter()

    def key(self, sample_id: str) -> CFEKey:
        return CFEKey(self.dataset, sample_id, self.gen.name, self.gen.llm_model, self.gen.prompt_version,
                      self.teacher_id)

    def _drop_dead_claims(self, keys: list[CFEKey]) -> None:
        """A claim whose owner process on this host is gone (e.g. ``kill -9``) is released at once
        instead of after its time-to-live."""
        host = socket.gethostname()
        for key in keys:
            owner = self.store.claim_owner(key)
            if not owner or owner == self.owner:
                continue
            parts = owner.rsplit("-", 2)  # host-pid-nonce
            if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not _alive(int(parts[1])):
                self.store.release(key, owner)

    def _target(self, probs) -> int | None:
        if self.target == "runner_up" and len(probs) > 2:
            return int(np.argsort(probs)[-2])
        return None

    def records(self, ids: list[str], texts: list[str]) -> dict[str, dict]:
        """Cached records for ``ids``; the missing ones are claimed, generated and stored. A record
        whose calls failed in transit is used by this run but never stored; a chunk whose calls
        all failed stops the stage (``EndpointFailed``)."""
        from cod_pipeline.counterfactuals.llm import EndpointFailed, endpoint_url, is_transport_error

        keys = {i: self.key(i) for i in ids}
        found = self.store.get_many(list(keys.values()))
        out = {i: found[k] for i, k in keys.items() if k in found}
        self.stats["cache_hits"] += len(out)
        text_of = dict(zip(ids, texts))
        while len(out) < len(ids):
            todo = [i for i in ids if i not in out]
            self._drop_dead_claims([keys[i] for i in todo])
            progressed = False
            for s in range(0, len(todo), self.chunk_size):  # claim and store chunk by chunk: a kill loses one chunk
                chunk = [i for i in todo[s:s + self.chunk_size] if i not in out]
                mine = set(self.store.claim_many([keys[i] for i in chunk], self.owner, self.claim_ttl_s))
                mine_ids = [i for i in chunk if keys[i] in mine]
                try:
                    if mine_ids:
                        recs = self._generate(mine_ids, [text_of[i] for i in mine_ids])
                        # a failed call is a fact about the endpoint, not a verdict on the original:
                        # never stored, so a later run against a working endpoint asks again
                        lost = [r for r in recs if r.get("transport_error") or (not r.get("valid") and any(
                            is_transport_error(k) for k in (r.get("rejections") or {})))]
                        if len(lost) == len(recs):
                            llm = getattr(self.gen, "llm_cfg", None) or getattr(getattr(self.gen, "llm", None),
                                                                                "llm_cfg", None)
                            kinds = sorted({k.split(":", 1)[1] for r in lost
                                            for k in [*r["rejections"], r.get("transport_error")]
                                            if is_transport_error(k)})
                            where = endpoint_url(llm) if llm is not None else self.gen.name
                            raise EndpointFailed(
                                f"CFE endpoint {where} failed all {len(recs)} requests of a chunk "
                                f"({', '.join(kinds)}{f' after {llm.max_retries} retries' if llm else ''}); "
                                f"nothing stored for them; CFEs stored so far are kept")
                        for i, rec in zip(mine_ids, recs):
                            if any(rec is r for r in lost):
                                self.stats["transport_failures"] += 1  # used this run only
                            else:
                                self.store.put(keys[i], rec)
                            out[i] = rec
                        progressed = True
                finally:
                    self.store.release_many(list(mine), self.owner)
            others = [keys[i] for i in todo if i not in out]
            found = self.store.get_many(others)  # stored meanwhile by another job
            out.update({i: found[keys[i]] for i in todo if keys[i] in found})
            others = [k for k in others if k not in found]
            if others and not progressed:  # another live job is paying for these: wait for its records
                got = self.store.wait_for(others, timeout_s=self.claim_ttl_s)
                out.update({i: got[keys[i]] for i in todo if keys[i] in got})
        return out

    def _generate(self, ids: list[str], texts: list[str]) -> list[dict]:
        orig_probs = self.scorer(texts)
        recs = []
        for sid, text, p in zip(ids, texts, orig_probs):
            recs.append({"sample_id": sid, "original": text, "orig_probs": p.tolist(), "label": int(p.argmax()),
                         "target": self._target(p), "cfe": None, "candidate": None, "cfe_probs": None,
                         "cfe_label": None, "valid": False, "reason": None, "attempts": 0, "calls": 0,
                         "retries": 0, "rejections": {}, "generator": self.gen.name, "edits": None})
        pending = list(range(len(recs)))
        feedback: dict[int, str] = {}
        attempts = self.max_attempts if self.gen.uses_feedback else 1
        for _ in range(attempts):
            if not pending:
                break
            items = [Item(recs[j]["original"], recs[j]["label"], recs[j]["target"], self.label_names,
                          feedback.get(j)) for j in pending]
            cands = self.gen.propose(items, self.scorer)
            unscored = [c.text for c in cands if c.text and c.extra.get("probs") is None]
            probs_iter = iter(self.scorer(unscored) if unscored else [])
            still = []
            for j, c in zip(pending, cands):
                r = recs[j]
                probs = c.extra.pop("probs", None) if c.text else None
                if c.text and probs is None:
                    probs = next(probs_iter)
                r["attempts"] += 1
                r["calls"] += c.calls
                r["retries"] += c.retries
                if c.extra.get("tokens"):
                    r["tokens"] = [a + b for a, b in zip(r.get("tokens") or [0, 0], c.extra["tokens"])]
                self.stats["llm_calls"] += c.calls
                self.stats["llm_retries"] += c.retries
                if c.text:
                    r["candidate"], r["cand_probs"] = c.text, probs.tolist()
                    r.setdefault("first_candidate", c.text)  # the unvalidated ablation uses the first proposal
                for key in ("edits", "near", "near_probs", "lm_logprob", "lm_logprob_original", "transport_error"):
                    if c.extra.get(key) is not None:
                        r[key] = c.extra[key]
                reason = c.rejection or self.gate.reason(r["original"], c.text, probs, r["label"], r["target"],
                                                         self.gen.examples)
                if reason is None:
                    r.update(cfe=c.text, cfe_probs=probs.tolist(), cfe_label=int(np.argmax(probs)), valid=True,
                             reason=None, n_edits=edited_words(r["original"], c.text),
                             edit_distance=normalized_edit_distance(r["original"], c.text))
                else:
                    r["rejections"][reason] = r["rejections"].get(reason, 0) + 1
                    r["reason"] = reason
                    feedback[j] = _feedback(c.text, probs, self.label_names, reason)
                    still.append(j)
            pending = still
        self.stats["generated"] += len(recs)
        return recs

    def valid_cfe(self, rec: dict, seen: set[str]) -> bool:
        """Valid when generated, and still valid under the current gate (no duplicate CFEs)."""
        ok = bool(rec.get("valid")) and self.gate.reason(rec["original"], rec["cfe"], rec["cfe_probs"], rec["label"],
                                                         rec.get("target"), self.gen.examples, seen) is None
        if ok:
            seen.add(rec["cfe"].strip().lower())
        return ok

    def pairs(self, pool, order_by_class: list[list[int]], n_per_class: int, max_tries: int | None = None,
              accept=None) -> tuple[list[tuple[int, dict]], list[dict]]:
        """Originals (pool row positions) whose record passes ``accept`` (default: a valid CFE),
        n_per_class per class, walking each class's draw order (at most ``max_tries`` originals
        per class); returns the pairs, class-interleaved, and the originals that failed."""
        chosen, failed = [], []
        seen: set[str] = set()
        accept = accept or (lambda rec: self.valid_cfe(rec, seen))
        limit = max_tries or 4 * n_per_class + 8
        for cls_order in order_by_class:
            got, pos = [], 0
            while len(got) < n_per_class and pos < min(len(cls_order), limit):
                batch = cls_order[pos:min(pos + n_per_class - len(got), limit)]
                pos += len(batch)
                ids = [pool.iloc[b]["id"] for b in batch]
                recs = self.records(ids, [pool.iloc[b]["text"] for b in batch])
                for b, sid in zip(batch, ids):
                    (got if accept(recs[sid]) else failed).append((b, recs[sid]))
            chosen.append(got)
        # interleave classes so any prefix stays balanced
        pairs = [p for group in zip(*chosen) for p in group]
        return pairs, [rec for _, rec in failed]


CFEGeneration = ValidatedCFEs  # the old name (benchmarks/ import it)
