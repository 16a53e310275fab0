"""What a launch sets up before the loop: the shared run folder, the precision in effect,
the Accelerator, and interrupt handling that every process agrees on.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import broadcast_object_list, parse_flag_from_env

from subdistill.errors import UserError

PRECISIONS = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    requested: str
    effective: str
    reason: str = ""

    def describe(self) -> str:
        if self.requested == self.effective:
            return f"mixed precision {self.effective}"
        return f"mixed precision {self.requested} asked, {self.effective} in effect ({self.reason})"


def choose_precision(requested: str, device: torch.device) -> Precision:
    """The precision that will really run: fp16 autocast needs a GPU, bf16 a device that has it."""
    if requested not in PRECISIONS:
        raise UserError(f"train.mixed_precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "fp16" and device.type == "cpu":
        return Precision(requested, "no", "fp16 autocast needs a GPU")
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return Precision(requested, "no", "this GPU has no bf16")
    return Precision(requested, requested)


def cpu_only() -> bool:
    """No GPU (or other accelerator) here, or `accelerate launch --cpu` asked for the CPU.

    Accelerate then has to be told so: on a CPU-only machine a multi-process launch
    only forms a (gloo) process group when the state is created with cpu=True;
    otherwise every process silently runs alone.
    """
    if parse_flag_from_env("ACCELERATE_USE_CPU"):
        return True
    if hasattr(torch, "accelerator"):  # torch >= 2.6
        return not torch.accelerator.is_available()
    return not torch.cuda.is_available()


def shared_run(pick: Callable[[], tuple[Path, Optional[Path]]]) -> tuple[PartialState, Path, Optional[Path]]:
    """Start the processes' group; the main process picks (run folder, state to resume) and tells the others.

    Naming on every process would race on the clock and could make one folder per process.
    """
    state = PartialState(cpu=cpu_only())
    choice: list = [None]
    if state.is_main_process:
        try:
            choice[0] = pick()
        except UserError as err:
            choice[0] = err  # every process must fail the same way, not wait forever
    if state.num_processes > 1:
        broadcast_object_list(choice, from_process=0)
    if isinstance(choice[0], UserError):
        raise choice[0]
    run_dir, resume_state = choice[0]
    return state, Path(run_dir), None if resume_state is None else Path(resume_state)


def make_accelerator(run_dir: Path, precision: Precision, grad_accum: int) -> Accelerator:
    return Accelerator(
        cpu=cpu_only(),
        mixed_precision=precision.effective,
        gradient_accumulation_steps=grad_accum,
        log_with="tensorboard",
        project_dir=str(run_dir),
        # The loop steps the schedule itself, once per optimizer step, whatever the process count.
        step_scheduler_with_optimizer=False,
    )


class Interrupts:
    """SIGINT / SIGTERM set a flag; the loop saves a state at the next step and exits.

    Processes may receive the signal at different steps, so the flag is agreed on with
    an all-reduce before anyone acts. A second SIGINT stops at once.
    """

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self.previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self.previous[number] = signal.signal(number, self._handle)

    def _handle(self, number: int, frame: object) -> None:
        if self.received is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = number

    def agreed(self, accelerator: Accelerator) -> Optional[int]:
        """The signal any process received (the same answer on all of them), or None."""
        local = self.received or 0
        if accelerator.num_processes > 1:
            flag = torch.tensor([local], device=accelerator.device)
            local = int(accelerator.gather(flag).max().item())
        return local or None

    def restore(self) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous.clear()
