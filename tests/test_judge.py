"""The judge measures CFEs and is reachable from no generator; faithfulness on a toy task where
it is known; the generator's own reader makes a teacher-only flip no CFE."""
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cod_pipeline import ConfigError
from cod_pipeline.counterfactuals.beam import SearchConfig, search_cfe
from cod_pipeline.judge import NgramJudge, ensure_judge, faithfulness, judge_spec
from tests.conftest import ROOT, make_cfg

COUNTERFACTUALS = ROOT / "cod_pipeline" / "counterfactuals"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_generator_module_imports_the_judge():
    files = sorted(COUNTERFACTUALS.glob("*.py"))
    assert files
    for f in files:
        assert not any(n == "cod_pipeline.judge" or n.startswith("cod_pipeline.judge.") for n in _imports(f)), f


def test_building_and_running_a_generator_never_loads_the_judge():
    code = ("import sys, numpy as np\n"
            "from cod_pipeline.counterfactuals import pairing, generate, generators, beam, gate, pool\n"
            "from cod_pipeline.counterfactuals.generators import SearchGenerator, Item\n"
            "g = SearchGenerator('sentiment', reader={'pool_size': 4})\n"
            "g.fit_pool(['a good film', 'a bad film', 'good', 'bad'], np.array([[0, 1], [1, 0], [0, 1], [1, 0]]))\n"
            "s = lambda ts: np.array([[0.1, 0.9] if 'good' in t else [0.9, 0.1] for t in ts])\n"
            "g.propose([Item('a bad film', 0, None, ['neg', 'pos'])], s)\n"
            "print('cod_pipeline.judge' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


TOPICS = {0: ["cat", "kitten", "meow", "whiskers"], 1: ["dog", "puppy", "bark", "leash"]}


def _toy(n=200):
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        texts.append(f"my {rng.choice(TOPICS[y])} sat near the {rng.choice(['door', 'table', 'sofa'])}")
        labels.append(y)
    return texts, labels


def test_faithfulness_is_the_share_of_cfes_the_judge_gives_their_new_class():
    judge = NgramJudge(2).fit(*_toy())
    recs = [  # the teacher's label on the original and on the CFE; the judge reads the topic word
        {"original": "my cat sat near the door", "label": 0, "cfe": "my dog sat near the door", "cfe_label": 1},
        {"original": "my puppy sat near the sofa", "label": 1, "cfe": "my kitten sat near the sofa", "cfe_label": 0},
        {"original": "my meow sat near the table", "label": 0, "cfe": "my bark sat near the table", "cfe_label": 1},
        {"original": "my cat sat near the door", "label": 0, "cfe": "my cat sat near the sofa", "cfe_label": 1},
        {"original": "my dog sat near the door", "label": 0, "cfe": None, "cfe_label": None, "valid": False},
    ]
    for r in recs:
        r.setdefault("valid", True)
    out = faithfulness(judge, recs)
    assert out["n_judged"] == 4 and out["faithfulness"] == pytest.approx(0.75)  # the furniture edit is no CFE
    assert out["judge_teacher_agreement"] == pytest.approx(0.8)  # it reads "dog" where the teacher said 0
    assert [r.get("judge_label") for r in recs] == [1, 0, 1, 0, None]


def test_auto_judge_is_of_another_family_than_the_generators_reader(tmp_path):
    cfg = make_cfg(tmp_path, ["model=tiny"])
    assert judge_spec(cfg)["name"] == "ngram"
    assert judge_spec(cfg, ["ngram-logreg"])["name"] == "mpnet"
    assert judge_spec(make_cfg(tmp_path, ["judge=none"])) is None
    assert make_cfg(tmp_path, ["cfe=lm_reader"]).cfe.reader.pool_size > 0


def test_a_judge_of_the_generators_family_fails_in_one_line(tmp_path):
    from cod_pipeline.data import load_splits
    from tests.conftest import write_sentiment_tsv

    path = write_sentiment_tsv(tmp_path / "s.tsv", 200)
    cfg = make_cfg(tmp_path, ["model=tiny", "judge=ngram", "dataset=local", f"dataset.source.path={path}",
                              "dataset.val_size=20", "dataset.test_size=40"])
    splits = load_splits(cfg.dataset)
    with pytest.raises(ConfigError, match="another family"):
        ensure_judge(cfg, splits, ["ngram-logreg"])
    judge, meta = ensure_judge(cfg, splits)
    assert meta["test"]["accuracy"] > 0.9 and meta["family"] == "ngram-logreg"
    assert ensure_judge(cfg, splits)[1] == meta  # cached: read back, not retrained


def _teacher(texts):  # over-reacts to "slow" (its absence reads positive); "good" it reads as a reader would
    out = []
    for t in texts:
        w = t.lower().split()
        p = 0.99 if "slow" not in w else (0.7 if {"good", "great"} & set(w) else 0.1)
        out.append([1 - p, p])
    return np.array(out)


def _reader(texts):
    return np.array([[0.1, 0.9] if {"good", "great", "fine", "nice"} & set(t.lower().split()) else [0.8, 0.2]
                     for t in texts])


def test_a_flip_counts_only_where_the_second_reader_gives_the_new_class_too():
    cfg = SearchConfig(task="sentiment", target_margin=1.0)
    alone = search_cfe(["the film was bad and slow"], [0], _teacher, cfg)[0]
    assert "slow" not in alone.text.split()  # the teacher's quirk: an adversarial flip
    both = search_cfe(["the film was bad and slow"], [0], _teacher, cfg, second=_reader)[0]
    assert both.text == "the film was good and slow" and _reader([both.text])[0].argmax() == 1
