"""What produced a result: the project's git commit (and whether the tree had uncommitted
changes) and the versions of the libraries that decide the numbers. Recorded in every
result.json; a cached result reused under another commit is pointed out (``stale_notice``).
Tolerant of no git, no repository and an unreadable tree: unknown fields are ``None``."""
from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "transformers", "pytorch-lightning", "hydra-core", "datasets", "cod-pipeline")


def _git(*args: str, root: Path | None = None) -> str | None:
    try:
        p = subprocess.run(["git", "-C", str(root or ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else None


def git_state(root: Path | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` for the project's working tree."""
    head = _git("rev-parse", "HEAD", root=root)
    commit = (head or "").strip() or None
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", root=root)
    return {"commit": commit, "dirty": None if status is None else bool(status.strip())}


@functools.lru_cache(maxsize=None)
def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(root: Path | None = None) -> dict:
    return {**git_state(root), "versions": dict(versions())}


def short(commit: str | None) -> str:
    return commit[:7] if commit else "unknown"


def stale_notice(result: dict, current: dict | None = None) -> str | None:
    """One line when ``result`` was computed under another commit than the current one, else None
    (same commit, or the current commit is unknown)."""
    now = (current if current is not None else git_state()).get("commit")
    then = (result.get("provenance") or {}).get("commit")
    if not now or then == now:
        return None
    was = f"commit {short(then)}" if then else "an unrecorded commit"
    return f"reused result from {was} (now {short(now)}); resume=false recomputes"
