"""A Hydra callback the SLURM test adds to its sweep: the first job to start claims the hold, says
which SLURM task it is, and waits (bounded) so that the test can kill it while it runs. No race
with a tiny job that might finish first, and no test hook in the product."""
import os
import time
from pathlib import Path

from hydra.experimental.callback import Callback


class HoldFirstJob(Callback):
    def __init__(self, hold_dir: str, max_wait_s: float = 300.0) -> None:
        self.hold_dir = Path(hold_dir)
        self.max_wait_s = max_wait_s

    def on_job_start(self, config, **kwargs) -> None:
        try:
            (self.hold_dir / "claimed").mkdir(parents=True)  # atomic: one job in the whole sweep holds
        except FileExistsError:
            return
        task = f"{os.environ.get('SLURM_ARRAY_JOB_ID', '')}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
        (self.hold_dir / "held.tmp").write_text(task)
        (self.hold_dir / "held.tmp").rename(self.hold_dir / "held")
        deadline = time.time() + self.max_wait_s
        while time.time() < deadline:  # the test's scancel ends this process
            time.sleep(0.5)
