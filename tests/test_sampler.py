import numpy as np
import pandas as pd
import pytest

from cod_pipeline import ConfigError
from cod_pipeline.data.splits import KShotSampler, make_splits


def labels(n_per_class=(300, 200, 100)):
    return np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])


@pytest.mark.parametrize("k", [6, 12, 48, 150])
def test_balanced(k):
    y = labels()
    idx = KShotSampler(y, 3, seed=1).draw(k)
    assert len(idx) == len(set(idx)) == k
    assert np.bincount(y[idx], minlength=3).tolist() == [k // 3] * 3


def test_nested_across_k_and_deterministic_per_seed():
    y = labels()
    draws = [KShotSampler(y, 3, seed=7).draw(k) for k in (6, 12, 24, 96)]
    for small, big in zip(draws, draws[1:]):
        assert set(small) <= set(big)
        assert list(big[: len(small)]) == list(small)
    assert list(KShotSampler(y, 3, seed=7).draw(24)) == list(draws[2])
    assert list(KShotSampler(y, 3, seed=8).draw(24)) != list(draws[2])


@pytest.mark.parametrize("k,msg", [(7, "not divisible"), (0, "positive"), (600, "class 2 has only 100")])
def test_bad_k(k, msg):
    with pytest.raises(ConfigError, match=msg):
        KShotSampler(labels(), 3, seed=0).draw(k)


def test_splits_fixed_and_disjoint():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"text": [f"sentence {i} {rng.integers(1e9)}" for i in range(3000)],
                       "label": rng.integers(0, 4, 3000)})
    a = make_splits(df, None, val_size=300, test_size=500)
    b = make_splits(df.sample(frac=1, random_state=3), None, val_size=300, test_size=500)
    assert a.num_classes == 4
    assert sorted(a.test["id"]) == sorted(b.test["id"]) and sorted(a.validation["id"]) == sorted(b.validation["id"])
    ids = [set(s["id"]) for s in (a.train, a.validation, a.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert (len(a.validation), len(a.test)) == (300, 500)


def test_groups_never_straddle_splits():
    df = pd.DataFrame({"text": [f"s{i}" for i in range(1000)], "label": [i % 2 for i in range(1000)],
                       "group": [f"film{i // 10}" for i in range(1000)]})
    s = make_splits(df, ["neg", "pos"], val_size=95, test_size=200)
    groups = [set(x["group"]) for x in (s.train, s.validation, s.test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_string_labels_and_mismatch():
    df = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": ["pos", "neg", "pos", "neg"]})
    s = make_splits(df, ["neg", "pos"], val_size=1, test_size=1)
    assert set(pd.concat([s.train, s.validation, s.test])["label"]) == {0, 1}
    with pytest.raises(ConfigError, match="do not match"):
        make_splits(df, ["negative", "positive"], val_size=1, test_size=1)


def test_grouped_splits_keep_the_label_prior():
    """Whole single-label groups carved in hash order drift from the corpus prior; the
    carve skips groups that would push a class past its share."""
    rng = np.random.default_rng(1)
    sizes = rng.integers(5, 60, 300)
    glabel = (rng.random(300) < 0.58).astype(int)
    df = pd.DataFrame({"text": [f"g{g} s{i}" for g, n in enumerate(sizes) for i in range(n)],
                       "label": np.repeat(glabel, sizes), "group": np.repeat([f"film{g}" for g in range(300)], sizes)})
    prior = df["label"].mean()
    s = make_splits(df, ["neg", "pos"], val_size=800, test_size=1500)
    for part, size in ((s.test, 1500), (s.validation, 800)):
        assert abs(part["label"].mean() - prior) < 0.02
        assert 0.9 * size <= len(part) <= 1.05 * size
