"""Append-only, multi-process-safe cache of counterfactual explanations (SQLite, WAL mode).

One row per :class:`CFEKey`; the first writer wins (``INSERT OR IGNORE``) and each ``put``
is its own committed transaction, so a ``kill -9`` loses at most the in-flight record.

Intended use by a generator (several processes / sweep jobs may share one store)::

    store = CFEStore(path)
    cached = store.get_many(keys)                      # 1. reuse what is already paid for
    todo = [k for k in keys if k not in cached]
    mine = store.claim_many(todo, owner)               # 2. claim the rest (atomic, BEGIN IMMEDIATE)
    try:
        for k in mine:                                 # 3. generate + put, one commit per record
            store.put(k, generate(k))
    finally:
        store.release_many(mine, owner)                # 4. release claims
    others = [k for k in todo if k not in set(mine)]
    got = store.wait_for(others, timeout_s=...)        # 5. wait for keys claimed by other owners
    # keys missing from ``got`` had their claim go stale (owner died) or timed out:
    # claim and generate them yourself (loop back to step 2).

Claims expire ``ttl_s`` seconds after they were taken (or last refreshed by re-claiming
with the same owner); an expired claim can be taken over by anyone.

**Shared (network) filesystems.** WAL needs shared memory on one host, and SQLite's own locks
are not to be relied on over NFS/Lustre/CIFS. ``shared_fs`` chooses (argument, else
``$COD_SHARED_FS``, else ``auto``):

- ``false`` (local disk): WAL, one connection kept open (the fast default);
- ``true``: rollback journal (``journal_mode=DELETE``, ``synchronous=FULL``), and every read and
  write runs under a POSIX record lock (``fcntl.lockf``; NFSv3 NLM / NFSv4 / Lustre ``flock``
  mount) on the sidecar file ``<db>.lock`` (shared for reads, exclusive for writes), on a
  connection opened *after* the lock is taken and closed before it is released, so each
  operation sees the previous writer's closed file (NFS close-to-open consistency);
- ``auto``: ``true`` when the store's folder is on nfs/nfs4/lustre/cifs/smb/gpfs/beegfs/ceph/
  glusterfs/fuse.sshfs per ``/proc/mounts``, else ``false``.

Every process sharing one store file must use the same mode (auto gives every node the same
answer for the same mount).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["CFEKey", "CFEStore", "export_row", "is_network_fs", "resolve_shared_fs"]

NETWORK_FS = ("nfs", "nfs4", "lustre", "cifs", "smb3", "smbfs", "gpfs", "beegfs", "ceph", "glusterfs",
              "fuse.glusterfs", "fuse.sshfs", "fuse.ceph", "9p", "afs", "panfs", "orangefs", "pvfs2")


def _mount_type(path: str | Path, mounts: str = "/proc/mounts") -> str | None:
    """Filesystem type of the mount holding ``path`` (longest mount-point prefix), None if unknown."""
    p = os.path.realpath(os.path.abspath(path))  # resolves the existing part; the rest stays as given
    best, kind = "", None
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (p == mnt or p.startswith(mnt.rstrip("/") + "/") or mnt == "/") and len(mnt) >= len(best):
            best, kind = mnt, parts[2]
    return kind


def is_network_fs(path: str | Path, mounts: str = "/proc/mounts") -> bool:
    kind = _mount_type(path, mounts)
    return kind is not None and (kind in NETWORK_FS or kind.split(".")[0] in NETWORK_FS)


def resolve_shared_fs(path: str | Path, shared_fs: bool | str | None = None) -> bool:
    """``shared_fs`` (bool, or "auto"/"true"/"false"; None: ``$COD_SHARED_FS``, default auto) -> bool."""
    if shared_fs is None:
        shared_fs = os.environ.get("COD_SHARED_FS", "auto")
    if isinstance(shared_fs, bool):
        return shared_fs
    v = str(shared_fs).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    if v in ("auto", "", "none", "null"):
        return is_network_fs(Path(path).parent)
    raise ValueError(f"shared_fs must be auto, true or false, not {shared_fs!r}")


@dataclass(frozen=True)
class CFEKey:
    dataset: str
    sample_id: str
    generator: str
    llm_model: str
    prompt_version: str
    teacher_id: str

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(str(getattr(self, f)) for f in _KEY_COLS)


_KEY_COLS: tuple[str, ...] = tuple(f.name for f in fields(CFEKey))
_KEY_SQL = ", ".join(_KEY_COLS)
_KEY_WHERE = " AND ".join(f"{c} = ?" for c in _KEY_COLS)
_CHUNK = 100  # keys per row-value IN (...) query (6 params each)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS cfe (
    {", ".join(f"{c} TEXT NOT NULL" for c in _KEY_COLS)},
    record TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY ({_KEY_SQL})
);
CREATE TABLE IF NOT EXISTS claims (
    {", ".join(f"{c} TEXT NOT NULL" for c in _KEY_COLS)},
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY ({_KEY_SQL})
);
"""


def read_only_uri(path: str | Path) -> str:
    """An SQLite URI that reads ``path`` and writes nothing. On a read-only folder a WAL database
    cannot make its ``-shm`` file, so it is opened ``immutable``: right only while no ``-wal``
    file holds writes not yet checkpointed (a closed store leaves none), so that case fails."""
    path = Path(path)
    if os.access(path.parent, os.W_OK):
        return f"file:{path}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size:
        raise sqlite3.OperationalError(f"{wal} holds writes not yet in the store, and its folder is read-only")
    return f"file:{path}?immutable=1"


def damage(path: str | Path) -> str | None:
    """What SQLite's quick check finds wrong with an existing store (None: it reads), read-only."""
    try:
        with closing(sqlite3.connect(read_only_uri(path), uri=True)) as con:
            verdict = con.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        verdict = str(e)
    return None if verdict == "ok" else str(verdict)


@contextmanager
def _full_disk(path: Path):
    """A full disk under the store is one line that says so (the records already stored are kept)."""
    try:
        yield
    except sqlite3.OperationalError as e:
        if "full" not in str(e):
            raise
        from cod_pipeline import ConfigError

        raise ConfigError(f"the disk holding {path} is full ({e}): free space and run again; "
                          f"the CFEs stored so far are kept") from None


class CFEStore:
    """SQLite-backed append-only CFE cache. Safe across threads (one lock) and processes (SQLite
    locks; on a shared filesystem a lock file, see the module docstring)."""

    def __init__(self, path: str | Path, shared_fs: bool | str | None = None, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._conn: sqlite3.Connection | None = None
        if read_only:  # an existing store, only read (an export from a read-only mount): nothing created
            self.shared_fs = False
            self._conn = sqlite3.connect(read_only_uri(self.path), uri=True, timeout=60, check_same_thread=False)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shared_fs = resolve_shared_fs(self.path, shared_fs)
        if self.shared_fs:
            with self._db(write=True, init=True):
                pass  # journal mode + schema, under the exclusive lock
        else:
            # isolation_level=None: autocommit; explicit BEGIN IMMEDIATE for multi-statement transactions.
            self._conn = self._connect()
            self._retry_locked(self._init_db)

    # -- setup -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.path), timeout=60, isolation_level=None, check_same_thread=False)

    def _init_db(self, c: sqlite3.Connection | None = None) -> None:
        c = c or self._conn
        c.execute("PRAGMA busy_timeout = 60000")
        want = "delete" if self.shared_fs else "wal"
        mode = c.execute(f"PRAGMA journal_mode={want.upper()}").fetchone()[0]
        if str(mode).lower() != want:  # pragma: no cover - e.g. unsupported filesystem
            raise sqlite3.OperationalError(f"could not enable {want} mode on {self.path} (got {mode})")
        c.execute("PRAGMA synchronous=FULL" if self.shared_fs else "PRAGMA synchronous=NORMAL")
        c.executescript(_SCHEMA)

    @contextmanager
    def _db(self, write: bool = False, init: bool = False):
        """A connection for one operation: local mode, the open WAL connection under the thread
        lock; shared-FS mode, a fresh connection under the lock file (shared or exclusive)."""
        with self._lock:
            if not self.shared_fs:
                yield self._conn
                return
            import fcntl

            fd = os.open(str(self.lock_path), os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                c = self._connect()
                try:
                    if init:
                        self._retry_locked(lambda: self._init_db(c))
                    else:
                        c.execute("PRAGMA busy_timeout = 60000")
                        if write:
                            c.execute("PRAGMA synchronous=FULL")
                    yield c
                finally:
                    c.close()
            finally:
                os.close(fd)  # closing the descriptor releases the record lock

    @contextmanager
    def _transaction(self, c: sqlite3.Connection):
        """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error. SQLite has already rolled
        back after a full disk; a second ROLLBACK would replace "disk is full" by "cannot rollback"."""
        self._retry_locked(lambda: c.execute("BEGIN IMMEDIATE"))
        try:
            with _full_disk(self.path):
                yield c
                c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    @staticmethod
    def _retry_locked(fn, tries: int = 50):
        # Switching to WAL / creating tables may return SQLITE_BUSY without invoking the busy handler
        # when several processes open a fresh database at the same moment.
        for i in range(tries):
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or i == tries - 1:
                    raise
                time.sleep(0.05 * (1 + i % 5))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def __enter__(self) -> "CFEStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------------
    def get(self, key: CFEKey) -> dict | None:
        with self._db() as c:
            row = c.execute(f"SELECT record FROM cfe WHERE {_KEY_WHERE}", key.as_tuple()).fetchone()
        return None if row is None else json.loads(row[0])

    def get_many(self, keys: Sequence[CFEKey]) -> dict[CFEKey, dict]:
        keys = list(dict.fromkeys(keys))
        out: dict[CFEKey, dict] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            placeholders = ", ".join(["(" + ", ".join("?" * len(_KEY_COLS)) + ")"] * len(chunk))
            params = [v for k in chunk for v in k.as_tuple()]
            with self._db() as c:
                rows = c.execute(
                    f"SELECT {_KEY_SQL}, record FROM cfe WHERE ({_KEY_SQL}) IN (VALUES {placeholders})", params
                ).fetchall()
            for r in rows:
                out[CFEKey(*r[:-1])] = json.loads(r[-1])
        return out

    def __contains__(self, key: CFEKey) -> bool:
        with self._db() as c:
            return c.execute(f"SELECT 1 FROM cfe WHERE {_KEY_WHERE}", key.as_tuple()).fetchone() is not None

    def __len__(self) -> int:
        with self._db() as c:
            return int(c.execute("SELECT COUNT(*) FROM cfe").fetchone()[0])

    def all(self, **filters: Any) -> list[dict]:
        """All records in insertion order, each merged with its key fields and ``created_at``.

        Filters on key fields (``dataset=``, ``generator=``, ...) are applied in SQL; any other
        filter is compared against the record's own fields (e.g. ``valid=True``).
        """
        sql_f = {k: v for k, v in filters.items() if k in _KEY_COLS}
        rec_f = {k: v for k, v in filters.items() if k not in _KEY_COLS}
        where = " AND ".join(f"{k} = ?" for k in sql_f)
        q = f"SELECT {_KEY_SQL}, record, created_at FROM cfe" + (f" WHERE {where}" if where else "") + " ORDER BY rowid"
        with self._db() as c:
            rows = c.execute(q, [str(v) for v in sql_f.values()]).fetchall()
        out = []
        for r in rows:
            rec = json.loads(r[len(_KEY_COLS)])
            if any(rec.get(k) != v for k, v in rec_f.items()):
                continue
            out.append({**rec, **dict(zip(_KEY_COLS, r[: len(_KEY_COLS)])), "created_at": r[-1]})
        return out

    def keys(self, **filters: Any) -> list[CFEKey]:
        return [CFEKey(*(r[c] for c in _KEY_COLS)) for r in self.all(**filters)]

    # -- writes ------------------------------------------------------------------------------
    def put(self, key: CFEKey, record: dict) -> bool:
        """Insert ``record`` unless ``key`` is already stored (first writer wins). Commits immediately.

        Returns True if this call inserted the row.
        """
        payload = json.dumps(record, ensure_ascii=False, allow_nan=True, default=_json_default)
        with self._db(write=True) as c, _full_disk(self.path):
            cur = c.execute(
                f"INSERT OR IGNORE INTO cfe ({_KEY_SQL}, record, created_at) VALUES ({', '.join('?' * (len(_KEY_COLS) + 2))})",
                (*key.as_tuple(), payload, time.time()),
            )
            return cur.rowcount == 1

    # -- claims ------------------------------------------------------------------------------
    def claim(self, key: CFEKey, owner: str, ttl_s: float = 600) -> bool:
        """Atomically claim ``key`` for ``owner``. False if already stored or held by another live owner.

        Re-claiming a key you already hold refreshes its expiry; expired claims are taken over.
        """
        return bool(self.claim_many([key], owner, ttl_s))

    def claim_many(self, keys: Iterable[CFEKey], owner: str, ttl_s: float = 600) -> list[CFEKey]:
        """Claim several keys in one ``BEGIN IMMEDIATE`` transaction; returns the keys obtained."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return []
        got: list[CFEKey] = []
        with self._db(write=True) as c, self._transaction(c):
            now = time.time()
            for k in keys:
                t = k.as_tuple()
                if c.execute(f"SELECT 1 FROM cfe WHERE {_KEY_WHERE}", t).fetchone() is not None:
                    continue  # already generated: nothing to claim
                row = c.execute(f"SELECT owner, expires_at FROM claims WHERE {_KEY_WHERE}", t).fetchone()
                if row is None:
                    c.execute(
                        f"INSERT INTO claims ({_KEY_SQL}, owner, claimed_at, expires_at) VALUES ({', '.join('?' * (len(_KEY_COLS) + 3))})",
                        (*t, owner, now, now + ttl_s),
                    )
                elif row[0] == owner or row[1] < now:
                    c.execute(
                        f"UPDATE claims SET owner = ?, claimed_at = ?, expires_at = ? WHERE {_KEY_WHERE}",
                        (owner, now, now + ttl_s, *t),
                    )
                else:
                    continue
                got.append(k)
        return got

    def release(self, key: CFEKey, owner: str) -> None:
        self.release_many([key], owner)

    def release_many(self, keys: Iterable[CFEKey], owner: str) -> None:
        keys = list(keys)
        if not keys:
            return
        with self._db(write=True) as c, self._transaction(c):
            c.executemany(f"DELETE FROM claims WHERE {_KEY_WHERE} AND owner = ?", [(*k.as_tuple(), owner) for k in keys])

    def claim_owner(self, key: CFEKey) -> str | None:
        """Owner of a live (non-expired) claim on ``key``, else None."""
        with self._db() as c:
            row = c.execute(
                f"SELECT owner FROM claims WHERE {_KEY_WHERE} AND expires_at >= ?", (*key.as_tuple(), time.time())
            ).fetchone()
        return None if row is None else row[0]

    def wait_for(self, keys: Sequence[CFEKey], poll_s: float = 0.2, timeout_s: float = 3600.0) -> dict[CFEKey, dict]:
        """Poll until every key is stored, or its claim is gone/stale, or ``timeout_s`` elapses.

        Returns the records found. Keys absent from the result were abandoned (no live claim
        and no record: the owner died or released without writing) or timed out; the caller
        should claim and generate them itself.
        """
        pending = list(dict.fromkeys(keys))
        found: dict[CFEKey, dict] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            found.update(self.get_many(pending))
            pending = [k for k in pending if k not in found]
            if not pending:
                break
            live = [k for k in pending if self.claim_owner(k) is not None]
            if len(live) < len(pending):
                # re-check records written between the two queries before giving up on those keys
                found.update(self.get_many([k for k in pending if k not in set(live)]))
            pending = live
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(poll_s)
        return found

    # -- maintenance -------------------------------------------------------------------------
    def integrity_check(self) -> str:
        with self._db() as c:
            return str(c.execute("PRAGMA integrity_check").fetchone()[0])

    def export_rows(self, **filters: Any) -> list[dict]:
        """One flat row per record (see :func:`export_row`), in insertion order; filters as in :meth:`all`."""
        return [export_row(r) for r in self.all(**filters)]

    def purge_failed(self, **filters: Any) -> int:
        """Delete the failed records (``valid`` false) matching the key filters, so the next run
        generates them again; the one exception to append-only. Returns the number deleted."""
        failed = [CFEKey(*(r[c] for c in _KEY_COLS)) for r in self.all(**filters) if not r.get("valid")]
        n = 0
        with self._db(write=True) as c, self._transaction(c):
            for k in failed:
                n += c.execute(f"DELETE FROM cfe WHERE {_KEY_WHERE}", k.as_tuple()).rowcount
        return n


EXPORT_FIELDS = ("dataset", "sample_id", "original", "cfe", "label", "cfe_label", "orig_probs", "cfe_probs",
                 "generator", "llm_model", "prompt_version", "teacher_id", "edits", "n_edits", "valid", "reason",
                 "created_at")


def export_row(rec: dict) -> dict:
    """A record merged with its key (as :meth:`CFEStore.all` returns it), reduced to the exported
    fields: original and CFE, the teacher's labels and probabilities on both, generator, edits,
    validity and the reason a failed one was rejected."""
    return {f: rec.get(f) for f in EXPORT_FIELDS}


def _json_default(o: Any) -> Any:
    # numpy scalars / arrays and other array-likes
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    raise TypeError(f"CFE record value of type {type(o).__name__} is not JSON serialisable")
