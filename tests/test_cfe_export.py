"""`python -m cod_pipeline.cfe export` / `purge-failed` on a store filled through CFEStore (issue #16)."""
import json
import subprocess
import sys

import pytest

from cod_pipeline.cfe import main
from cod_pipeline.counterfactuals.store import CFEKey, CFEStore
from tests.conftest import ROOT


def key(i, dataset="sst2"):
    return CFEKey(dataset=dataset, sample_id=str(i), generator="search", llm_model="", prompt_version="v1",
                  teacher_id="t0")


def record(i, valid):
    return {"sample_id": str(i), "original": f"the film was good {i}", "orig_probs": [0.2, 0.8], "label": 1,
            "cfe": f"the film was bad {i}" if valid else None, "cfe_probs": [0.9, 0.1] if valid else None,
            "cfe_label": 0 if valid else None, "valid": valid, "reason": None if valid else "no_flip",
            "generator": "search", "edits": [["good", "bad"]] if valid else None, "n_edits": 1 if valid else None,
            "attempts": 1, "rejections": {} if valid else {"no_flip": 1}}


def fill(cache):
    with CFEStore(cache / "cfe.sqlite") as store:
        for i in range(6):
            assert store.put(key(i), record(i, valid=i % 2 == 0))
        for i in range(3):
            assert store.put(key(i, "tweets"), record(i, valid=False))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_writes_jsonl_with_the_fields(tmp_path):
    cache = tmp_path / "cache"
    fill(cache)
    out = tmp_path / "x" / "cfes.jsonl"
    assert main(["export", "--cache", str(cache), "--out", str(out)]) == 0
    rows = read_jsonl(out)
    assert len(rows) == 9
    assert {"original", "cfe", "label", "cfe_label", "orig_probs", "cfe_probs", "generator", "edits", "valid",
            "reason", "dataset", "sample_id", "teacher_id"} <= set(rows[0])
    r0 = rows[0]
    assert (r0["dataset"], r0["sample_id"], r0["original"], r0["cfe"]) == ("sst2", "0", "the film was good 0",
                                                                           "the film was bad 0")
    assert (r0["label"], r0["cfe_label"], r0["orig_probs"], r0["cfe_probs"]) == (1, 0, [0.2, 0.8], [0.9, 0.1])
    assert r0["valid"] is True and r0["reason"] is None and r0["edits"] == [["good", "bad"]]
    assert rows[1]["valid"] is False and rows[1]["reason"] == "no_flip" and rows[1]["cfe"] is None

    only = tmp_path / "tweets.jsonl"
    main(["export", "--cache", str(cache / "cfe.sqlite"), "--dataset", "tweets", "--out", str(only)])
    assert [r["dataset"] for r in read_jsonl(only)] == ["tweets"] * 3


def test_export_to_stdout_as_a_module(tmp_path):
    cache = tmp_path / "cache"
    fill(cache)
    p = subprocess.run([sys.executable, "-m", "cod_pipeline.cfe", "export", "--cache", str(cache), "--dataset",
                        "sst2"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["sample_id"] for r in rows] == [str(i) for i in range(6)]


def test_purge_failed_deletes_failed_records_so_they_are_generated_again(tmp_path, capsys):
    cache = tmp_path / "cache"
    fill(cache)
    assert main(["purge-failed", "--cache", str(cache), "--dataset", "sst2"]) == 0
    assert "3 failed CFE records deleted" in capsys.readouterr().err
    with CFEStore(cache / "cfe.sqlite") as store:
        assert [r["sample_id"] for r in store.all(dataset="sst2")] == ["0", "2", "4"]
        assert len(store.all(dataset="tweets")) == 3  # another dataset untouched
        # a purged key is free again: claimable and writable (first writer wins again)
        assert store.claim_many([key(1), key(2)], "me") == [key(1)]
        assert store.put(key(1), record(1, valid=True)) and store.get(key(1))["valid"] is True
    main(["purge-failed", "--cache", str(cache)])
    with CFEStore(cache / "cfe.sqlite") as store:
        assert len(store) == 4 and all(r["valid"] for r in store.all())


def test_missing_store_is_one_error(tmp_path):
    p = subprocess.run([sys.executable, "-m", "cod_pipeline.cfe", "export", "--cache", str(tmp_path / "none")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: no CFE store at") and len(p.stderr.splitlines()) == 1


def _one_error(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_an_empty_or_damaged_store_is_one_line_and_stays_as_it_was(tmp_path, capsys):
    empty = tmp_path / "empty" / "cfe.sqlite"
    empty.parent.mkdir()
    empty.touch()
    for cmd in ("export", "purge-failed"):
        assert "is empty (0 bytes): not a CFE store" in _one_error(capsys, cmd, "--cache", str(empty))
    assert empty.stat().st_size == 0  # no database made in its place
    cache = tmp_path / "cache"
    fill(cache)
    db = cache / "cfe.sqlite"
    with CFEStore(db) as store:
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    damaged = bytearray(db.read_bytes())
    damaged[100:4096] = b"\xff" * (4096 - 100)  # the first page past the header: the schema
    db.write_bytes(bytes(damaged))
    before = db.read_bytes()
    assert "cfe.sqlite is damaged (" in _one_error(capsys, "export", "--cache", str(cache))
    assert db.read_bytes() == before


def test_a_read_only_store_exports_and_refuses_purge_in_one_line(tmp_path, capsys):
    cache, ro = tmp_path / "cache", tmp_path / "ro"
    fill(cache)
    ro.mkdir()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(cache), str(ro)], capture_output=True).returncode:
        pytest.skip("a read-only bind mount needs root")
    try:
        out = tmp_path / "cfes.jsonl"
        assert main(["export", "--cache", str(ro), "--out", str(out)]) == 0
        assert len(read_jsonl(out)) == 9 and "9 CFE records written" in capsys.readouterr().err
        assert "is read-only: purge-failed deletes records" in _one_error(capsys, "purge-failed", "--cache", str(ro))
    finally:
        subprocess.run(["umount", str(ro)], check=True)
