"""The embedded real datasets beyond the defaults: a 3-class task and a stance task."""
from __future__ import annotations

import pytest

from cod_pipeline import ConfigError
from cod_pipeline.data import load_splits
from tests.conftest import make_cfg


def test_tweets3_keeps_neutral_as_a_third_class_and_tweets_is_unchanged(tmp_path):
    from cod_pipeline.data.sources import tweets

    binary, three = tweets(), tweets(("negative", "neutral", "positive"))
    counts = three["label"].value_counts().to_dict()
    assert sorted(counts) == [0, 1, 2] and min(counts.values()) > 1000
    # the binary task is the 3-class one without its neutral rows, positive still 1
    assert (binary["label"] == 1).sum() == counts[2] and (binary["label"] == 0).sum() == counts[0]
    splits = load_splits(make_cfg(tmp_path, ["dataset=tweets3"]).dataset)
    assert splits.label_names == ["negative", "neutral", "positive"]
    assert sorted(splits.test["label"].unique()) == [0, 1, 2]
    with pytest.raises(ConfigError, match="each one of negative, neutral, positive"):
        tweets(("negative", "neutrall"))


def test_convention_keeps_each_speaker_in_one_split(tmp_path):
    from cod_pipeline.data.sources import convention

    df = convention()
    assert set(df["label"]) == {0, 1} and df["text"].is_unique
    assert df["text"].str.split().str.len().between(5, 40).all()
    splits = load_splits(make_cfg(tmp_path, ["dataset=convention"]).dataset)
    by_text = dict(zip(df["text"], df["group"]))
    speakers = [{by_text[t] for t in part["text"]} for part in (splits.train, splits.validation, splits.test)]
    assert not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])
    assert all(set(part["label"]) == {0, 1} for part in (splits.train, splits.validation, splits.test))
