"""Fine-tune a teacher or distil a student, on one process or many.

    accelerate launch subdistill/train.py recipe=fmnist_k32 train.stage=finetune
    accelerate launch subdistill/train.py recipe=fmnist_k32 [key=value ...]
    python subdistill/train.py recipe=fmnist_k32 tiny=true          # seconds, on a CPU
    accelerate launch --multi_gpu --num_processes 2 subdistill/train.py recipe=... resume=latest

A launch makes one run folder (distill: <output_root>/<run>/; finetune: the store's
teacher folder) holding config.yaml, state/step_<n>/, tensorboard/, metrics.jsonl,
summary.json and the result: student.safetensors + student.json + projection.safetensors,
or the teacher checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (python or accelerate launch), Python puts this file's folder, subdistill/,
# first on sys.path: its modules (data, features, training, ...) would then shadow installed
# packages of the same names. Swap it for the repository root, which also finds the package
# when it is not installed.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from subdistill.cli import guarded  # noqa: E402
from subdistill.config import Config  # noqa: E402
from subdistill.errors import UserError  # noqa: E402
from subdistill.recipes import resolve  # noqa: E402

STAGES = ("distill", "finetune")


def hyper_for(config: Config):
    """The optimisation settings of the configured stage."""
    from subdistill.training.engine import Hyper

    train = config.train
    shared = dict(
        grad_accum=train.grad_accum,
        clip_grad=train.clip_grad,
        stop_at=train.stop_at,
        log_every=train.log_every,
        eval_every=train.eval_every,
        save_every=train.save_every,
        keep_last=train.keep_last,
    )
    if train.stage == "finetune":
        stage = config.finetune
        optimizer = stage.optimizer
    else:
        stage, optimizer = train, "adamw"
    return Hyper(
        stage.epochs,
        stage.max_steps,
        stage.batch_size,
        stage.lr,
        stage.weight_decay,
        stage.warmup_steps,
        optimizer,
        **shared,
    )


def pick_run(config: Config):
    """(run folder, state to resume or None), decided on the main process only."""
    from subdistill.runs import run_name
    from subdistill.store import TEACHER_FILE, teacher_dir
    from subdistill.training.checkpoints import STATE_DIR, find_resume

    root = Path(config.output_root)
    if config.train.stage == "finetune":
        fixed = teacher_dir(config)
    else:
        fixed = root / config.run if config.run else None
    if config.resume:
        return find_resume(config, root, fixed)
    run_dir = fixed or root / run_name(config)

    # A second run in a used folder would mix its states and logs with the first one's.
    finished_teacher = config.train.stage == "finetune" and (run_dir / TEACHER_FILE).is_file()
    if (run_dir / STATE_DIR).is_dir() and not finished_teacher:
        raise UserError(f"{run_dir} already holds a run: continue it with resume=latest, or pick another run=NAME")
    return run_dir, None


def run(config: Config) -> dict:
    """One launch of the configured stage; returns the summary (empty when the run paused)."""
    from accelerate.utils import set_seed

    from subdistill.runs import write_config
    from subdistill.store import TEACHER_FILE
    from subdistill.training.checkpoints import check_resume_settings
    from subdistill.training.engine import Engine
    from subdistill.training.runtime import choose_precision, make_accelerator, shared_run

    if config.train.stage not in STAGES:
        raise UserError(f"train.stage must be one of {', '.join(STAGES)}, got {config.train.stage!r}")
    hyper = hyper_for(config)
    state, run_dir, resume_state = shared_run(lambda: pick_run(config))
    if resume_state is not None:
        check_resume_settings(config, run_dir)  # before config.yaml is written again
    if config.train.stage == "finetune" and resume_state is None and (run_dir / TEACHER_FILE).is_file():
        if state.is_main_process:
            print(f"finetune: the teacher is already fine-tuned in {run_dir}; nothing to do")
        return {"stage": "finetune", "teacher": str(run_dir), "skipped": True}

    precision = choose_precision(config.train.mixed_precision, state.device)
    accelerator = make_accelerator(run_dir, precision, hyper.grad_accum)
    set_seed(config.seed)

    log = print if accelerator.is_main_process else (lambda *_: None)
    if config.train.stage == "finetune":
        from subdistill.training.finetune import FinetuneTask

        task = FinetuneTask(config, accelerator, log)
    else:
        from subdistill.training.distill import DistillTask

        task = DistillTask(config, accelerator, log)

    # Written only once the task is built, so a mistake in the recipe leaves no half-made run folder.
    if accelerator.is_main_process:
        write_config(run_dir, config)
        print(f"run folder {run_dir}", flush=True)
    return Engine(config, task, hyper, accelerator, run_dir, precision, resume_state).run()


def main(argv: list[str]) -> None:
    run(resolve(argv))


if __name__ == "__main__":
    guarded(main, sys.argv[1:])
