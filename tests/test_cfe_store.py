"""CFEStore: roundtrip, append-only, multi-process writers, claims, crash safety."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cod_pipeline.counterfactuals.store import CFEKey, CFEStore

STORE_PY = Path(__file__).resolve().parents[1] / "cod_pipeline" / "counterfactuals" / "store.py"


def key(i, dataset="sst2", **kw):
    base = dict(dataset=dataset, sample_id=str(i), generator="llm", llm_model="gpt-4o",
                prompt_version="v1", teacher_id="t0")
    base.update(kw)
    return CFEKey(**base)


# Worker processes load store.py directly (no package import -> fast start, no torch).
WORKER = textwrap.dedent(
    r'''
    import importlib.util, json, os, sys, time
    spec = importlib.util.spec_from_file_location("cfe_store", sys.argv[1])
    m = importlib.util.module_from_spec(spec); sys.modules["cfe_store"] = m; spec.loader.exec_module(m)
    mode, db, go = sys.argv[2], sys.argv[3], sys.argv[4]
    args = json.loads(sys.argv[5])
    def k(i):
        return m.CFEKey("sst2", str(i), "llm", "gpt-4o", "v1", "t0")
    store = m.CFEStore(db)
    while not os.path.exists(go):
        time.sleep(0.005)
    if mode == "write":
        n = 0
        for i in args["ids"]:
            n += store.put(k(i), {"original": f"s{i}", "cfe": f"c{i}", "writer": args["name"], "probs": [0.1, 0.9]})
        print(json.dumps({"inserted": n}), flush=True)
    elif mode == "claim":
        paid, waited = [], []
        for i in args["ids"]:
            kk = k(i)
            if store.get(kk) is not None:
                continue
            if not store.claim(kk, args["name"], ttl_s=30):
                waited.append(kk)
                continue
            time.sleep(0.002)  # "generation"
            paid.append(i)
            store.put(kk, {"cfe": f"c{i}", "writer": args["name"]})
            store.release(kk, args["name"])
        got = store.wait_for(waited, poll_s=0.02, timeout_s=30)
        print(json.dumps({"paid": paid, "waited": len(waited), "got": len(got)}), flush=True)
    elif mode == "forever":
        i = 0
        while True:
            store.put(k(i), {"cfe": f"c{i}", "i": i})
            i += 1
    '''
)


@pytest.fixture
def worker(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"

    def start(mode, db, **args):
        return subprocess.Popen(
            [sys.executable, str(script), str(STORE_PY), mode, str(db), str(go), json.dumps(args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    start.go = go
    return start


def _finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_put_get_roundtrip(tmp_path):
    db = tmp_path / "deep" / "dir" / "cfe.sqlite"
    store = CFEStore(db)
    assert db.exists() and len(store) == 0
    rec = {"original": "good film", "cfe": "bad film", "cfe_label": 0, "probs": [0.8, 0.2],
           "valid": True, "reason": None, "attempts": 2, "calls": 3}
    assert store.get(key(1)) is None
    assert store.put(key(1), rec) is True
    assert store.get(key(1)) == rec
    assert key(1) in store and key(2) not in store
    store.put(key(2), {**rec, "cfe": None, "valid": False, "reason": "copy_of_input"})
    store.put(key(3, dataset="cola"), rec)
    assert len(store) == 3
    many = store.get_many([key(1), key(2), key(99), key(3, dataset="cola")])
    assert set(many) == {key(1), key(2), key(3, dataset="cola")}
    assert many[key(2)]["reason"] == "copy_of_input"
    assert [r["sample_id"] for r in store.all(dataset="sst2")] == ["1", "2"]
    assert [r["sample_id"] for r in store.all(valid=False)] == ["2"]
    assert all("created_at" in r for r in store.all())
    # large get_many crosses the chunk boundary
    for i in range(10, 260):
        store.put(key(i), {"i": i})
    assert len(store.get_many([key(i) for i in range(0, 300)])) == 252
    store.close()
    # persisted and re-openable; journal is WAL
    store2 = CFEStore(db)
    assert store2.get(key(1)) == rec
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_numpy_values_serialise(tmp_path):
    np = pytest.importorskip("numpy")
    store = CFEStore(tmp_path / "c.sqlite")
    store.put(key(1), {"probs": np.array([0.25, 0.75], dtype=np.float32), "label": np.int64(1)})
    assert store.get(key(1)) == {"probs": [0.25, 0.75], "label": 1}


def test_append_only_first_writer_wins(tmp_path):
    store = CFEStore(tmp_path / "c.sqlite")
    assert store.put(key(1), {"cfe": "first"}) is True
    assert store.put(key(1), {"cfe": "second"}) is False
    assert store.get(key(1)) == {"cfe": "first"}
    other = CFEStore(tmp_path / "c.sqlite")  # a second connection sees the same and cannot overwrite
    assert other.put(key(1), {"cfe": "third"}) is False
    assert other.get(key(1)) == {"cfe": "first"} and len(other) == 1


def test_two_processes_concurrent_writers(tmp_path, worker):
    db = tmp_path / "c.sqlite"
    a = worker("write", db, ids=list(range(0, 200)), name="A")
    b = worker("write", db, ids=list(range(299, 99, -1)), name="B")  # overlap 100..199, reverse order
    time.sleep(0.3)
    worker.go.touch()
    ra, rb = _finish(a), _finish(b)
    assert ra["inserted"] + rb["inserted"] == 300
    store = CFEStore(db)
    assert store.integrity_check() == "ok"
    rows = store.all()
    assert len(rows) == 300 == len(store)
    assert sorted(int(r["sample_id"]) for r in rows) == list(range(300))  # each key exactly once
    assert {r["writer"] for r in rows if int(r["sample_id"]) < 100} == {"A"}
    assert {r["writer"] for r in rows if int(r["sample_id"]) >= 200} == {"B"}
    raw = sqlite3.connect(db).execute("SELECT COUNT(*), COUNT(DISTINCT sample_id) FROM cfe").fetchone()
    assert raw == (300, 300)


def test_claims_across_processes_pay_once(tmp_path, worker):
    db = tmp_path / "c.sqlite"
    ids = list(range(120))
    CFEStore(db)  # pre-create
    a = worker("claim", db, ids=ids, name="A")
    b = worker("claim", db, ids=ids[::-1], name="B")
    c = worker("claim", db, ids=ids, name="C")
    time.sleep(0.3)
    worker.go.touch()
    res = [_finish(p) for p in (a, b, c)]
    paid = [i for r in res for i in r["paid"]]
    assert sorted(paid) == ids  # every key generated exactly once across processes
    for r in res:  # every process ended up with all keys it had to wait for
        assert r["got"] == r["waited"]
    store = CFEStore(db)
    assert len(store) == 120 and store.integrity_check() == "ok"
    assert store.claim_owner(key(0)) is None  # all released


def test_claim_semantics_in_process(tmp_path):
    s1, s2 = CFEStore(tmp_path / "c.sqlite"), CFEStore(tmp_path / "c.sqlite")
    assert s1.claim(key(1), "A", ttl_s=60)
    assert not s2.claim(key(1), "B", ttl_s=60)  # held by a live owner
    assert s1.claim(key(1), "A", ttl_s=60)  # re-entrant refresh
    assert s2.claim_owner(key(1)) == "A"
    s1.release(key(1), "B")  # wrong owner: no-op
    assert s2.claim_owner(key(1)) == "A"
    s1.release(key(1), "A")
    assert s2.claim(key(1), "B")
    s2.put(key(1), {"cfe": "x"})
    assert not s1.claim(key(1), "A")  # already stored -> nothing to claim
    # stale claims are taken over
    assert s1.claim(key(2), "A", ttl_s=0.05)
    time.sleep(0.1)
    assert s2.claim(key(2), "B", ttl_s=60)
    assert s1.claim_many([key(2), key(3), key(4)], "A") == [key(3), key(4)]


def test_wait_for(tmp_path):
    s1, s2 = CFEStore(tmp_path / "c.sqlite"), CFEStore(tmp_path / "c.sqlite")
    s1.put(key(1), {"cfe": "one"})
    assert s1.claim(key(2), "A", ttl_s=60)
    assert s1.claim(key(3), "A", ttl_s=0.3)  # owner "dies": never writes key 3
    import threading

    threading.Timer(0.2, lambda: s1.put(key(2), {"cfe": "two"})).start()
    t0 = time.monotonic()
    got = s2.wait_for([key(1), key(2), key(3), key(4)], poll_s=0.02, timeout_s=10)
    assert got == {key(1): {"cfe": "one"}, key(2): {"cfe": "two"}}  # 3 went stale, 4 never claimed
    assert time.monotonic() - t0 < 5
    # timeout while a live claim is held
    assert s1.claim(key(5), "A", ttl_s=60)
    t0 = time.monotonic()
    assert s2.wait_for([key(5)], poll_s=0.02, timeout_s=0.2) == {}
    assert 0.15 < time.monotonic() - t0 < 3


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_sigkill_midway_leaves_readable_store(tmp_path, worker):
    db = tmp_path / "c.sqlite"
    p = worker("forever", db)
    worker.go.touch()
    probe = CFEStore(db)
    deadline = time.monotonic() + 30
    seen = 0
    while time.monotonic() < deadline:
        seen = len(probe)
        if seen >= 100:
            break
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL
    assert seen >= 100
    store = CFEStore(db)
    assert store.integrity_check() == "ok"
    rows = store.all()
    n = len(rows)
    assert n >= seen  # nothing that was observed as committed got lost
    assert sorted(int(r["sample_id"]) for r in rows) == list(range(n))  # contiguous prefix
    assert all(r["cfe"] == f"c{r['i']}" for r in rows)
    assert store.put(key(n), {"cfe": "after crash"}) and len(store) == n + 1


def test_a_full_disk_is_one_line_that_says_so_and_keeps_what_was_stored(tmp_path):
    """A real 256 KiB tmpfs: writes fail with SQLITE_FULL, which SQLite has already rolled back. The
    error used to be "cannot rollback - no transaction is active"; now it names the full disk,
    in puts and in claim transactions, and every record stored before it still reads."""
    from cod_pipeline import ConfigError

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        store = CFEStore(mnt / "cfe.sqlite", shared_fs=False)
        stored = 0
        with pytest.raises(ConfigError, match=r"the disk holding .*cfe.sqlite is full \(database or disk is full\)"):
            for i in range(100_000):
                store.put(key(i), {"original": f"s{i}", "cfe": "x" * 4000})
                stored += 1
        assert stored > 5
        with pytest.raises(ConfigError, match="is full"):
            store.claim_many([key(f"c{i}", generator=f"g{i}" * 400) for i in range(2000)], "me")
        store.close()
        again = CFEStore(mnt / "cfe.sqlite", read_only=True)
        assert len(again) == stored and again.get(key(0))["original"] == "s0"
        again.close()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
