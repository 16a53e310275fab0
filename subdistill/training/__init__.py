"""The training engine behind ``subdistill/train.py``: both stages of the method on Accelerate.

  engine.py       the loop, as named steps (batch -> loss -> step -> log / eval / save)
  distill.py      the distillation task: student s(x) -> targets t = R h / sqrt(K)
  finetune.py     the teacher fine-tuning task: cross-entropy through the teacher head
  targets.py      where targets come from: the frozen teacher online, or the feature cache
  students.py     student builders and the student.safetensors / student.json pair
  losses.py       subspace loss, probe-head cross-entropy, Hinton KD
  heads.py        the teacher's JL probe head, found among validation's outputs
  schedule.py     warmup + cosine, step counting
  batches.py      seeded per-epoch sampling, index-carrying datasets
  checkpoints.py  atomic states, keep-last-N, resume
  evaluation.py   held-out metrics, each example counted once across processes
  logging.py      TensorBoard tracker, progress bar and log lines (main process only)
  runtime.py      the Accelerator, the shared run folder, precision, interrupts

Letters in shapes: B batch, D teacher width, K target width, C classes, N examples.
"""
