"""Stage outputs on disk, keyed by the config that made them.

A stage's key is a hash of exactly the config that determines its output, so a second
run (or another job of a sweep) that needs the same artefact finds it. Writes go to a
temporary folder that is renamed into place, so a killed run never leaves half an artefact.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger(__name__)


def to_plain(obj):
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    return obj


def config_hash(obj, length: int = 16) -> str:
    blob = json.dumps(to_plain(obj), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


class StageCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, stage: str, key_obj) -> Path:
        return self.root / stage / config_hash(key_obj)

    def exists(self, stage: str, key_obj) -> bool:
        return (self.path(stage, key_obj) / "DONE").exists()

    @contextmanager
    def writing(self, stage: str, key_obj):
        """Yield a temp folder; on success it becomes the artefact, atomically."""
        final = self.path(stage, key_obj)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
        try:
            yield tmp
            (tmp / "key.json").write_text(json.dumps(to_plain(key_obj), indent=2, sort_keys=True, default=str))
            (tmp / "DONE").write_text("")
            if final.exists():  # another job finished first: keep theirs
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def dist_rank() -> int:
    """This process's rank in a multi-process (DDP) job: SLURM tasks, torchrun, or the processes
    Lightning's launcher starts (``LOCAL_RANK``); 0 for a plain single process."""
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    for var in ("RANK", "LOCAL_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def job_token() -> str:
    """The same string in every rank of one multi-process job, different between jobs: what a
    lock's owner file records, so a job's other ranks can tell their rank 0 holds it."""
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in os.environ:
        return f"slurm:{os.environ['SLURM_JOB_ID']}.{os.environ.get('SLURM_STEP_ID', '')}"
    if "RANK" in os.environ and "MASTER_PORT" in os.environ:  # torchrun
        return f"torchrun:{os.environ.get('MASTER_ADDR', '')}:{os.environ['MASTER_PORT']}"
    host = os.uname().nodename
    # a process started by Lightning's DDP launcher: its parent is rank 0
    return f"{host}:{os.getppid() if int(os.environ.get('LOCAL_RANK', 0) or 0) > 0 else os.getpid()}"


def lock_owner(path: str | Path) -> str | None:
    """The job token of a lock's current holder (None when nobody holds it)."""
    import fcntl

    try:
        fd = os.open(str(path), os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None  # free (closing the descriptor releases our probe)
    except OSError:
        try:
            return Path(str(path) + ".owner").read_text().strip() or "?"
        except OSError:
            return "?"
    finally:
        os.close(fd)


@contextmanager
def file_lock(path: str | Path, what: str = "", poll_s: float = 1.0, report_every_s: float = 60.0):
    """Hold an exclusive POSIX record lock (``fcntl.lockf``) on ``path`` while the block runs.

    Works across processes and hosts on local disks, NFSv3 (NLM) / NFSv4 and Lustre mounted with
    ``flock``; the kernel (or the NFS server's lease) drops the lock when the holder dies, so a
    killed job never leaves a stale lock behind. Waiting is logged once, then every
    ``report_every_s`` seconds; yields True when it had to wait for another holder."""
    import fcntl
    import time

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o666)
    waited, last = False, 0.0
    try:
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                now = time.monotonic()
                if now - last >= report_every_s:
                    holder = ""
                    try:
                        holder = Path(str(path) + ".owner").read_text().strip()
                    except OSError:
                        pass
                    log.info("waiting for %s (lock %s%s)", what or "a lock", path, f", held by {holder}" if holder else "")
                    last = now
                waited = True
                time.sleep(poll_s)
        try:
            Path(str(path) + ".owner").write_text(job_token() + "\n")
        except OSError:
            pass
        yield waited
    finally:
        os.close(fd)  # releases the lock


def source_fingerprint(dataset) -> dict:
    """Size and content hash of a local dataset's files, so an edited file does not reuse stale
    artefacts, and the version of the split rule, so a changed rule does not either. Not their
    mtime: a copy, a restore or a fresh clone of the same bytes keeps every artefact."""
    from cod_pipeline.data.splits import SPLIT_RULE

    out = {"split_rule": SPLIT_RULE}
    files = _local_files(dataset)
    if "test_path" in files:
        from cod_pipeline.data.sources import TEST_FILE_RULE

        out["test_file_rule"] = TEST_FILE_RULE
    for key, p in files.items():
        out[key] = list(_file_digest(p))
    return out


def _file_digest(path: str) -> tuple[int, str]:
    st = os.stat(path)
    return st.st_size, _digest(path, st.st_size, st.st_mtime_ns)


def data_identity(dataset) -> str | None:
    """The local data files a run read, by name and content (``train.tsv#1a2b3c4d``; a test file
    after ``+``); None for a hub or embedded dataset, whose config names its data."""
    files = _local_files(dataset)
    if not files:
        return None
    return " + ".join(f"{Path(files[k]).name}#{_file_digest(files[k])[1][:8]}" for k in ("path", "test_path")
                      if k in files)


def without_local_paths(node: dict, dataset) -> dict:
    """``node`` (a plain copy of ``dataset``) without the paths of the files that
    ``source_fingerprint`` identifies by content: a moved data folder keeps its artefacts too."""
    for key in _local_files(dataset):
        node.get("source", {}).pop(key, None)
    return node


def _local_files(dataset) -> dict[str, str]:
    src = dataset.get("source") or {}
    paths = {key: os.path.expanduser(str(src.get(key))) for key in ("path", "test_path") if src.get(key)}
    return {key: p for key, p in paths.items() if os.path.isfile(p)}


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, once per process while its size and mtime stay (a job hashes it several times)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: two jobs may share a run folder
    tmp.write_text(json.dumps(to_plain(obj), indent=2, default=str))
    os.replace(tmp, path)


def read_json(path: Path, require: tuple[str, ...] = ()) -> dict | None:
    """The JSON object at ``path``; None, with one warning naming the file, when it cannot be
    read (truncated, not JSON, not an object, a key of ``require`` missing), so the caller
    recomputes it and overwrites the damaged entry instead of failing on it for good."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(obj, dict):
            raise ValueError(f"a JSON {type(obj).__name__}, not an object")
        missing = [k for k in require if k not in obj]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        why = f"{e.msg} at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else str(e)
        log.warning("cache entry %s cannot be read (%s): recomputing it", path, why)
        return None
    return obj
