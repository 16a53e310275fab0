"""One logging path, on the main process only: TensorBoard, a progress bar, log lines, metrics.jsonl.

Every ``log_every`` steps the same fields go to all three: step/total, loss, learning
rate, samples/s. TensorBoard tags are namespaced (train/..., eval/...) and written
through Accelerate's tracker into <run>/tensorboard; a resumed run purges the steps
after its state so the event stream's steps stay increasing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

from accelerate import Accelerator
from tqdm.auto import tqdm

TRACKER_DIR = "tensorboard"
METRICS_FILE = "metrics.jsonl"


class RunLogger:
    def __init__(self, accelerator: Accelerator, run_dir: Path, total_steps: int, start_step: int, desc: str):
        self.accelerator, self.run_dir, self.total = accelerator, run_dir, total_steps
        self.main = accelerator.is_main_process
        init_kwargs = {"tensorboard": {"purge_step": start_step + 1}} if start_step > 0 else {}
        accelerator.init_trackers(TRACKER_DIR, init_kwargs=init_kwargs)
        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            desc=desc,
            unit="step",
            disable=not self.main,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        self.clock, self.clock_step = time.perf_counter(), start_step
        if self.main and start_step > 0:
            self._forget_after(start_step)

    def info(self, message: str) -> None:
        if self.main:
            tqdm.write(message, file=sys.stdout)
            sys.stdout.flush()

    def advance(self) -> None:
        self.bar.update(1)

    def samples_per_s(self, step: int, samples_per_step: int) -> float:
        """Global samples per second since the previous call."""
        now = time.perf_counter()
        rate = (step - self.clock_step) * samples_per_step / max(now - self.clock, 1e-9)
        self.clock, self.clock_step = now, step
        return rate

    def train(self, step: int, loss: float, lr: float, samples_per_s: float, extra: Optional[dict] = None) -> None:
        values = {"train/loss": loss, "train/lr": lr, "train/samples_per_s": samples_per_s}
        values.update({f"train/{key}": value for key, value in (extra or {}).items()})
        self._record(step, values)
        parts = [f"loss {loss:.4f}", f"lr {lr:.3e}", f"samples/s {samples_per_s:.1f}"]
        parts += [f"{key} {value:.4f}" for key, value in (extra or {}).items()]
        self.info(f"step {step}/{self.total} | " + " | ".join(parts))
        self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def eval(self, step: int, metrics: dict) -> None:
        self._record(step, {f"eval/{key}": value for key, value in metrics.items()})
        parts = [
            f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
            for key, value in metrics.items()
        ]
        self.info(f"eval {step}/{self.total} | " + " | ".join(parts))

    def _record(self, step: int, values: dict) -> None:
        self.accelerator.log(values, step=step)
        if self.main:
            with open(self.run_dir / METRICS_FILE, "a") as handle:
                handle.write(json.dumps({"step": step, **values}) + "\n")

    def _forget_after(self, step: int) -> None:
        """A resumed run logs the steps after its state again: drop the old records of those."""
        path = self.run_dir / METRICS_FILE
        if path.is_file():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            path.write_text("".join(line + "\n" for line in kept))

    def close(self) -> None:
        self.bar.close()
        self.accelerator.end_training()
