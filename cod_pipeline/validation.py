"""The config's shape and ranges, declared once and checked right after composition.

``RULES`` maps a config path to what its value may be. ``validate(cfg)`` checks every path
the composed config has (groups without a key, e.g. ``cfe=search`` has no ``llm``, skip it),
then the few rules that tie two settings together (the k budget against the classes), then
the local data files: each failure is one ``ConfigError`` line, raised before any data or
model is loaded. ``pipeline.run`` calls it first, and ``pipeline.prepare`` calls it again for
callers that skip ``run``.
"""
from __future__ import annotations

import codecs
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from cod_pipeline import ConfigError
from cod_pipeline.stages import STAGES, stage_of

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@dataclass(frozen=True)
class Rule:
    """``kind``: int | number | choice | bool; bounds with open/closed ends; ``nullable``: null allowed."""
    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    nullable: bool = False

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "bool":
            return "true or false"
        what = "an integer" if self.kind == "int" else "a number"
        if self.lo is not None and self.hi is not None:
            what += f" in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        elif self.lo is not None:
            what += f" {'>' if self.lo_open else '>='} {_num(self.lo)}"
        elif self.hi is not None:
            what += f" {'<' if self.hi_open else '<='} {_num(self.hi)}"
        return what + (" (or null)" if self.nullable else "")

    def ok(self, v) -> bool:
        if v is None:
            return self.nullable
        if self.kind == "choice":
            return v in self.choices
        if self.kind == "bool":
            return isinstance(v, bool)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.kind == "int" and not isinstance(v, int):
            return False
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        if self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)):
            return False
        return True


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def positive_int(nullable=False):
    return Rule("int", lo=1, nullable=nullable)


def count(nullable=False):
    return Rule("int", lo=0, nullable=nullable)


def positive(nullable=False):
    return Rule("number", lo=0, lo_open=True, nullable=nullable)


def non_negative(nullable=False):
    return Rule("number", lo=0, nullable=nullable)


FRACTION = Rule("number", lo=0, hi=1)


def _training(prefix: str) -> dict[str, Rule]:
    lr = Rule("number", lo=0, lo_open=True, hi=1e30)  # beyond it, the first update overflows float32
    return {f"{prefix}.lr": lr, f"{prefix}.head_lr": Rule("number", lo=0, lo_open=True, hi=1e30, nullable=True),
            f"{prefix}.weight_decay": non_negative(), f"{prefix}.warmup_ratio": FRACTION,
            f"{prefix}.batch_size": positive_int(), f"{prefix}.eval_batch_size": positive_int(),
            f"{prefix}.epochs": count(), f"{prefix}.min_steps": count(), f"{prefix}.max_steps": positive_int(True),
            f"{prefix}.eval_every": positive_int(), f"{prefix}.seed": Rule("int", lo=0, hi=2**32 - 1), f"{prefix}.train_cap": positive_int(True),
            f"{prefix}.val_cap": positive_int(True), f"{prefix}.val_size": count()}


# The one table: config path -> rule. A path the composed config does not have is skipped.
RULES: dict[str, Rule] = {
    "stage": Rule("choice", choices=tuple(STAGES)),
    "k": positive_int(),
    "seed": Rule("int", lo=0, hi=2**32 - 1),  # numpy's and torch's seed range
    "threads": positive_int(nullable=True),
    "resume": Rule("bool"),
    "save_student": Rule("bool"),
    "paths.shared_fs": Rule("choice", choices=("auto", "true", "false", True, False)),
    "method.alpha": non_negative(),
    "method.temperature": positive(),
    "method.beta": non_negative(),
    "model.student_training.selection": Rule("choice", choices=("val", "last", "agreement")),
    "model.student_training.head_init": Rule("choice", choices=("random", "label_names")),
    **_training("model.teacher_training"),
    **_training("dataset.teacher_training"),
    **_training("model.student_training"),
    "dataset.val_size": count(),
    "dataset.test_size": positive_int(),
    "dataset.test_cap": positive_int(nullable=True),
    "cfe.max_edit_distance": Rule("number", lo=0, hi=1, lo_open=True),
    "cfe.free_edit_words": count(),
    "cfe.min_margin": Rule("number", lo=0, hi=1, hi_open=True),
    "cfe.max_attempts": positive_int(),
    "cfe.target": Rule("choice", choices=("runner_up",), nullable=True),
    "cfe.llm.mode": Rule("choice", choices=("chat", "completion")),
    "cfe.llm.max_tokens": positive_int(),
    "cfe.search.max_edits": positive_int(),
    "cfe.search.beam_size": positive_int(),
    "cfe.search.screen_dtype": Rule("choice", choices=("float32", "bfloat16", "float16")),
    "cfe.search.within_gate": Rule("bool"),
    "cfe.search.fallback": Rule("bool"),
    "cfe.search.protect": Rule("bool"),
    "cfe.lm.class_words": non_negative(nullable=True),
    "cfe.lm.keep_frame": Rule("bool"),
    "cfe.reader.margin": Rule("number", lo=0, hi=1),
    "cfe.runtime.chunk_size": positive_int(),
    "cfe.runtime.max_tries_per_class": positive_int(nullable=True),
    "cfe.runtime.max_words": positive_int(nullable=True),
    "cfe.runtime.max_in_flight": positive_int(),
    "cfe.runtime.timeout_s": positive(),
    "cfe.runtime.max_retries": count(),
    "cfe.runtime.backoff_base_s": non_negative(),
    "cfe.runtime.backoff_max_s": non_negative(),
    "cfe.runtime.retry_after_max_s": non_negative(),
    "cfe.search.deletions": Rule("choice", choices=("any", "modifiers")),
    "cfe.runtime.n_ctx": positive_int(),
    "cfe.runtime.n_threads": positive_int(nullable=True),
    "cfe.runtime.repack_weights": Rule("bool"),
    "cfe.runtime.startup_timeout_s": positive(),
    "augment.n_edits": positive_int(),
}

_MISSING = object()


def _get(cfg: DictConfig, path: str):
    node = cfg
    for part in path.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return _MISSING
        node = node[part]
    return node


def validate(cfg: DictConfig) -> None:
    """Every rule, then the k budget, then the local data files; the first failure raises."""
    check_moved_runtime(cfg)
    check_rules(cfg)
    check_base_url(cfg)
    check_price(cfg)
    check_template(cfg)
    check_pairs_fit_a_batch(cfg)
    check_names(cfg)
    check_task(cfg)
    check_budget(cfg)
    check_data_files(cfg.get("dataset"))


def check_base_url(cfg: DictConfig) -> None:
    """A key inside ``cfe.runtime.base_url`` (``user:pass@host`` or ``?api_key=``) would reach the
    run's config files, result.json and logs: it belongs in the environment."""
    from urllib.parse import urlsplit

    url = _get(cfg, "cfe.runtime.base_url")
    url = os.environ.get("OPENAI_BASE_URL") if url is _MISSING or not url else url
    if not url:
        return
    parts = urlsplit(str(url))
    if parts.username or parts.password or parts.query:
        env = _get(cfg, "cfe.runtime.api_key_env")
        env = "OPENAI_API_KEY" if env is _MISSING else env
        what = "user:password@" if parts.username or parts.password else "a ?query"
        raise ConfigError(f"cfe.runtime.base_url carries credentials ({what}): give the bare endpoint and put "
                          f"the key in ${env}")


def check_job(cfg: DictConfig, overrides) -> None:
    """What a job checks before anything loads (``cli.run_job``), and what a sweep checks for each
    of its jobs before the first starts (``preflight``)."""
    validate(cfg)
    check_added_keys(cfg, overrides)


def check_added_keys(cfg: DictConfig, overrides) -> None:
    """``+method.alph=0`` adds a key nothing reads, and the run trains at the defaults under a new
    hash: a ``+`` key whose name is a near miss of a key its node already has is a typo."""
    import difflib

    for o in overrides or ():
        if not o.startswith("+") or o.startswith("++") or "=" not in o:
            continue
        key = o[1:].split("=", 1)[0]
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig):
            continue
        siblings = [str(k) for k in node.keys() if str(k) != leaf]
        near = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.75)
        if near:
            where = f"{parent}." if parent else ""
            raise ConfigError(f"+{key}: {parent or 'the config'} has no key {leaf!r}, nothing would read it "
                              f"(did you mean {where}{near[0]}? without the +)")


def check_task(cfg: DictConfig) -> None:
    """``dataset.task`` picks the CFE edits and prompts; a name no entry has gets the generic ones
    (topic, stance, …), so a near miss of a known task ("sentimnet") would pass unnoticed."""
    import difflib

    from cod_pipeline.counterfactuals.tasks import TASKS

    task = _get(cfg, "dataset.task")
    if task is _MISSING or task is None:
        return
    names = {n: t.name for t in TASKS.values() for n in (t.name, *t.aliases)}
    if str(task).lower() in names:
        return
    near = difflib.get_close_matches(str(task).lower(), list(names), n=1, cutoff=0.75)
    if near:
        raise ConfigError(f"dataset.task={task!r} is no task (did you mean {names[near[0]]}?); a name of "
                          f"your own ({', '.join(sorted({t.name for t in TASKS.values()}))} have their own "
                          f"edits) gets the generic edits and prompt")


def check_names(cfg: DictConfig) -> None:
    """Names that become folders stay inside the output root, and class names are distinct (each
    is a column of predictions.csv and a row of the head)."""
    for key in ("task_name", "dataset.name", "model.name", "method.name", "augment.name"):
        v = _get(cfg, key)
        if v is _MISSING or v is None:
            continue
        parts = str(v).replace("\\", "/").split("/")
        if str(v).startswith(("/", "~")) or any(p in ("..", ".") for p in parts) or not str(v).strip():
            raise ConfigError(f"{key}={v!r} names a folder of the run: a plain name, no '..' or absolute path")
    names = _get(cfg, "dataset.label_names")
    if names is not _MISSING and names is not None:
        seen = [str(n) for n in names]
        dup = sorted({n for n in seen if seen.count(n) > 1})
        if dup:
            raise ConfigError(f"dataset.label_names={seen}: {', '.join(map(repr, dup))} named twice")


def check_template(cfg: DictConfig) -> None:
    """``dataset.label_template`` is formatted with one class name (the head starts from the class
    descriptions it makes): it holds one ``{}`` and no other field."""
    template = _get(cfg, "dataset.label_template")
    if template is _MISSING or template is None:
        return
    if _get(cfg, "model.student_training.head_init") == "label_names" and "{}" not in str(template or "{}"):
        raise ConfigError(f"dataset.label_template must contain {{}} for the class name, got {template!r}")
    try:
        str(template).format("x")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"dataset.label_template={template!r}: one {{}} for the class name and no other "
                          f"field ({type(e).__name__}: {e})") from None


def check_pairs_fit_a_batch(cfg: DictConfig) -> None:
    """A paired augment keeps an original and its CFE in one mini-batch: the batch holds two rows."""
    if _get(cfg, "augment.paired") is True and _get(cfg, "model.student_training.batch_size") == 1:
        raise ConfigError(f"augment={cfg.augment.name} keeps each original with its CFE in one mini-batch: "
                          f"model.student_training.batch_size must be at least 2")


def check_price(cfg: DictConfig) -> None:
    price = _get(cfg, "cfe.runtime.usd_per_mtok")
    if price is _MISSING or price is None:
        return
    if (not OmegaConf.is_list(price) or len(price) != 2
            or not all(Rule("number", lo=0).ok(v) for v in price)):
        raise ConfigError(f"cfe.runtime.usd_per_mtok={price}: [input, output] US$ per million tokens, two "
                          f"numbers >= 0 (or null)")


def _moved(old: str) -> str:
    return f"cfe.{old} moved: set cfe.runtime.{old.rsplit('.', 1)[-1]} (runtime settings live under cfe.runtime)"


def check_moved_runtime(cfg: DictConfig) -> None:
    """A runtime setting at its old place (``+cfe.chunk_size=4``, an option YAML of the old layout)
    would be ignored and, outside ``cfe.runtime``, move the CFE identity: one line naming the new key."""
    from cod_pipeline.counterfactuals.generators import moved_runtime

    cfe = cfg.get("cfe")
    if not isinstance(cfe, DictConfig):
        return
    rt = cfe.get("runtime") or {}
    for old in sorted({*moved_runtime(), *rt, *(f"llm.{k}" for k in rt)}):
        if _get(cfe, old) is not _MISSING:
            raise ConfigError(_moved(old))


def moved_override(overrides: list[str]) -> str | None:
    """The error line for a command-line override of a runtime setting's old path
    (``cfe.chunk_size=4``): Hydra's own is several lines and suggests ``+cfe.chunk_size``."""
    import re

    from cod_pipeline.counterfactuals.generators import moved_runtime

    for arg in overrides:
        m = re.match(r"[+~]*cfe\.([\w.]+)(=|$)", arg)
        if m and m.group(1) in moved_runtime():
            return _moved(m.group(1))
    return None


def override_error(argv: list[str], conf: Path) -> str | None:
    """One line for the command-line mistakes Hydra reports in several (and exits 1 on): a
    misspelt group or key (``metod=kd``) and a sweep without ``-m`` (``k=8,16``)."""
    import difflib
    import re

    multirun = any(a in ("-m", "--multirun") for a in argv)
    # another primary config or extra config folders bring names of their own: only the sweep check
    own_names = not any(a in ("-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name")
                        or a.startswith(("--config-dir=", "--config-name=", "--config-path=")) for a in argv)
    known = {p.name for p in conf.iterdir() if p.is_dir()} | {"hydra"}
    for f in [conf / "config.yaml", *sorted((conf / "experiment").glob("*.yaml"))]:  # experiments add keys (mechanism)
        known |= {str(k) for k in OmegaConf.load(f) if k != "defaults"}
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
            continue
        if arg in ("-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name"):
            skip_next = True
            continue
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        if not value.isascii() and (bad := _unparsable(arg)):
            items = value[1:-1].split(",") if value.startswith("[") and value.endswith("]") else None
            quoted = "[" + ",".join(f'"{x.strip()}"' for x in items) + "]" if items else f'"{value}"'
            return (f"{arg}: Hydra reads characters outside ASCII only inside quotes ({bad}); "
                    f"write '{key}={quoted}'")
        if key.startswith(("+", "~")):
            continue
        head = key.split(".", 1)[0].split("/", 1)[0]
        if own_names and head not in known:
            near = difflib.get_close_matches(head, sorted(known), n=1, cutoff=0.6)
            return (f"{arg}: no config group or key {head!r}" + (f" (did you mean {near[0]}?)" if near else "")
                    + "; python run.py --help lists them")
        if not multirun and re.search(r",(?![^\[\]{}()]*[\]})])", value) and not value.startswith(("'", '"')):
            return f"{arg} is a sweep over several values: add -m (python run.py -m {arg})"
    return None


def _unparsable(arg: str) -> str | None:
    """Hydra's parse error for one override (its first line), or None when it parses."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        OverridesParser.create().parse_override(arg)
    except Exception as e:  # noqa: BLE001 - Hydra's OverrideParseException and the lexer's HydraException
        return str(e).splitlines()[0]
    return None


def check_rules(cfg: DictConfig) -> None:
    for path, rule in RULES.items():
        try:
            v = _get(cfg, path)
        except Exception as e:  # an interpolation that does not resolve
            raise ConfigError(f"{path}: {e}") from None
        if v is _MISSING:
            continue
        if not rule.ok(v):
            raise ConfigError(f"{path} must be {rule.describe()}, got {v!r}")


def num_classes(cfg: DictConfig) -> int | None:
    """The class count when the config declares it (dataset.label_names), else None (from the data)."""
    names = cfg.get("dataset", {}).get("label_names") if cfg.get("dataset") is not None else None
    return len(names) if names else None


def augment_option(name: str) -> DictConfig:
    """An augment option as Hydra composes it: the running app's search path (``--config-dir``,
    plugins) and the option's own defaults list; outside an app, this package's ``conf/``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException

    try:
        if GlobalHydra.instance().is_initialized():
            return compose(overrides=[f"+augment={name}"]).augment
        with initialize_config_dir(str(CONF_DIR), version_base=None):
            return compose(overrides=[f"+augment={name}"]).augment
    except MissingConfigException:
        raise ConfigError(f"compare: no augment option {name!r} (see conf/augment/)") from None


def _arms(cfg: DictConfig) -> list[tuple[str, float]]:
    """(what, share of k spent on originals) for the main augment and each ``compare`` augment."""
    from cod_pipeline.augment import originals_share as share

    if stage_of(cfg).makes_cfes:  # a CoD run's CFEs: k/2 originals
        return [(f"stage={cfg.stage}", 0.5)]
    arms = [(f"augment={cfg.augment.name}", share(cfg.augment))]
    compare = cfg.get("compare") or []
    if isinstance(compare, str):  # compare=half: a string, which would be read letter by letter
        raise ConfigError(f"compare={compare}: compare is a list of augment options; write compare=[{compare}]")
    for name in compare:
        if name != cfg.augment.get("name"):  # composed as the job's arm will be: --config-dir options too
            arms.append((f"augment={name} (compare)", share(augment_option(name))))
    return arms


def check_budget(cfg: DictConfig) -> None:
    """k against the classes, in the numbers the user typed: CoD spends k/2 on originals."""
    if cfg.get("stage") not in STAGES or not stage_of(cfg).spends_k or cfg.get("augment") is None:
        return
    for what, share in _arms(cfg):
        _check_k(cfg.k, num_classes(cfg), share, what)


def _originals(k: int, share: float) -> int:
    return k // 2 if share == 0.5 else int(k * share)


def _fits(k: int, c: int | None, share: float) -> bool:
    if share == 0.5 and k % 2:
        return False  # k/2 originals + k/2 CFEs
    return c is None or (k % c == 0 and _originals(k, share) % c == 0 and _originals(k, share) > 0)


def _check_k(k: int, c: int | None, share: float, what: str) -> None:
    if _fits(k, c, share):
        return
    near = [k2 for k2 in range(max(1, k - 4 * (c or 2)), k + 4 * (c or 2) + 1) if _fits(k2, c, share)]
    lower = [k2 for k2 in near if k2 < k][-1:]
    upper = [k2 for k2 in near if k2 > k][:1]
    use = "use k=" + " or ".join(map(str, lower + upper)) if near else "use another k"
    n = _originals(k, share)
    part = "k/2" if share == 0.5 else f"k*{share:g}"
    if c is not None and k % c:
        raise ConfigError(f"k={k} is not divisible by the {c} classes; {use}")
    if c is None:
        raise ConfigError(f"k={k} with {what} needs an even k ({part} originals); {use}")
    raise ConfigError(f"k={k} with {what} needs {part}={n} divisible by {c} classes; {use}")


TEXT_FORMATS = ("tsv", "csv", "jsonl", "json")
_checked: dict[tuple, None] = {}


def check_data_files(dataset: DictConfig | None) -> None:
    """A local dataset's files exist, are not empty and are UTF-8 text (tsv/csv/jsonl), checked
    before anything is loaded; the rest (columns, labels) is checked where the file is read."""
    if dataset is None or not str((dataset.get("source") or {}).get("_target_", "")).endswith(".local"):
        return
    src = dataset.source
    for key in ("path", "test_path"):
        if OmegaConf.is_missing(src, key):
            raise ConfigError(f"dataset.source.{key} is not set (dataset.source.{key}=my.tsv)")
        raw = src.get(key)
        if raw is None:
            continue
        p = Path(os.path.expanduser(str(raw)))
        where = f"dataset.source.{key}={raw}"
        if not p.is_file():
            raise ConfigError(f"{where}: file not found" if not p.exists() else f"{where} is not a file")
        st = p.stat()
        if st.st_size == 0:
            raise ConfigError(f"{where} is empty")
        fmt = str(src.get("format") or p.suffix.lstrip(".")).lower()
        memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        if fmt in TEXT_FORMATS and memo not in _checked:
            _check_utf8(p, where)
            if fmt in ("tsv", "csv"):
                _check_header(p, fmt, src, where)
            _checked[memo] = None


def _check_header(p: Path, fmt: str, src: DictConfig, where: str) -> None:
    """The first line names the text and label columns, and a data row follows it."""
    import csv

    csv.field_size_limit(1 << 30)  # a long review is a long field, not an error (pandas reads it too)
    with open(p, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t" if fmt == "tsv" else ",",
                          quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
        try:
            head = next(rows, None)
            if head:
                head[0] = head[0].lstrip("\ufeff")  # pandas drops a UTF-8 byte-order mark too
            data = next((r for r in rows if any(c.strip() for c in r)), None)
        except csv.Error as e:
            raise ConfigError(f"{where}: not valid {fmt} at line {rows.line_num}: {e}") from None
    if head and src.get("header", True):
        dup = sorted({c for c in head if head.count(c) > 1})
        if dup:
            raise ConfigError(f"{where}: the header names column(s) {', '.join(map(repr, dup))} twice")
    header = src.get("header", True)
    if data is None and (header or head is None):
        raise ConfigError(f"{where} has no data rows" + (f" (only the header: {', '.join(head)})" if head else ""))
    if header and head is not None:
        for key, default in (("text_column", "sentence"), ("label_column", "label")):
            col = src.get(key, default)
            if col not in head:
                raise ConfigError(f"{where}: no column {col!r} for dataset.source.{key} "
                                  f"(columns: {', '.join(head)})")


def _check_utf8(p: Path, where: str) -> None:
    dec = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(p, "rb") as f:
        while block := f.read(1 << 20):
            try:
                dec.decode(block)
            except UnicodeDecodeError as e:
                pos = offset + e.start
                bad = block[e.start:e.start + 1].hex()
                line += block[:e.start].count(b"\n")
                raise ConfigError(f"{where} is not UTF-8 (byte 0x{bad} at offset {pos}, line {line}); "
                                  f"re-save it as UTF-8") from None
            offset += len(block)
            line += block.count(b"\n")
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ConfigError(f"{where} is not UTF-8 (it ends inside a multi-byte character); "
                              f"re-save it as UTF-8") from None


def needs_llm(cfg: DictConfig) -> bool:
    """Will this job ask a remote OpenAI-compatible endpoint for CFEs (not a server it starts itself)?"""
    from cod_pipeline.counterfactuals.generators import generator_class

    cfe = cfg.get("cfe")
    if cfe is None or not cfe.get("_target_") or not generator_class(cfe._target_).asks_endpoint(cfe):
        return False
    stage = stage_of(cfg)
    if stage.makes_cfes:
        return True
    if not stage.trains_student or not cfg.augment.get("_target_"):  # unpaired augments ask no generator
        return False
    from cod_pipeline.counterfactuals.pairing import augment_class

    return augment_class(cfg.augment).uses_generator


def check_llm_endpoint(cfg: DictConfig, timeout_s: float = 3.0) -> None:
    """A job that will ask an LLM endpoint fails here, in one line, when none answers at its
    address (connection refused, unknown host, no answer), instead of after the teacher and
    a chunk of retries; a hosted endpoint without its key fails here too."""
    rt = cfg.cfe.runtime
    url = rt.get("base_url") or os.environ.get("OPENAI_BASE_URL")  # the openai client reads it too
    if not url:
        env = rt.get("api_key_env", "OPENAI_API_KEY")
        if not os.environ.get(env):
            raise ConfigError(f"cfe={cfg.cfe.name} needs ${env} in the environment (or set cfe.runtime.base_url "
                              f"to a local server)")
        return
    why = unreachable(str(url), timeout_s)
    if why:
        raise ConfigError(f"cfe.runtime.base_url={url}: {why} (is the server running?); nothing was generated")


def unreachable(url: str, timeout_s: float = 3.0) -> str | None:
    """Why nothing accepts a TCP connection at ``url``'s host and port, or None when something does."""
    u = urlparse(url)
    if not u.hostname:
        return "not a URL (expected e.g. http://127.0.0.1:8000/v1)"
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError as e:
        return str(e)
    try:
        socket.create_connection((u.hostname, port), timeout=timeout_s).close()
    except socket.gaierror:
        return f"unknown host {u.hostname!r}"
    except ConnectionRefusedError:
        return f"connection refused on {u.hostname}:{port}"
    except TimeoutError:
        return f"no answer from {u.hostname}:{port} within {timeout_s:g} s"
    except OSError as e:
        return f"cannot connect to {u.hostname}:{port} ({e.strerror or e})"
    return None


class TrainingDiverged(ConfigError):
    """The training loss became NaN or infinite: the run stops and nothing is cached."""


__all__ = ["RULES", "Rule", "validate", "check_rules", "check_budget", "check_data_files", "needs_llm", "check_llm_endpoint",
           "unreachable", "TrainingDiverged"]
