"""Shared by the benchmark scripts: machine description and writing results/*.md."""
from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))


def use_local_glue() -> None:
    """``sst2_local`` / ``cola_local`` read ../shared/data unless $SST2_DIR / $COLA_DIR say otherwise."""
    os.environ.setdefault("SST2_DIR", str(SHARED / "sst2"))
    os.environ.setdefault("COLA_DIR", str(SHARED / "cola"))


def machine() -> str:
    import torch

    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; Python "
            f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"GPU: {'yes' if torch.cuda.is_available() else 'none'}")


def write(name: str, title: str, body: str, command: str | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = command or f"python benchmarks/{name}.py"
    text = f"# {title}\n\nMachine: {machine()}\nRun: {stamp}, `{command}`\n\n{body.strip()}\n"
    path.write_text(text)
    print(text)
    print(f"written: {path}")
    return path


def md_cell(text: str, n: int | None = None) -> str:
    """Text as one markdown table cell: pipes escaped, every line break (\\r too) a space, at most ``n`` chars."""
    s = " ".join(str(text).replace("|", "\\|").split())
    return s if n is None or len(s) <= n else s[: n - 1] + "…"


def md_table(rows: list[dict]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def compose(overrides: list[str], output: str = "bench"):
    """The project's real config, as `python run.py <overrides>` would see it, rooted at the repo."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(ROOT)
        cfg.paths.output_dir = str(ROOT / "logs" / output)
    return cfg
