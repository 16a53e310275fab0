"""What `subdistill evaluate` and `subdistill export` build on.

  runs.py         finding a run by name or path, and opening a finished student with its head
  embed.py        the student's inputs (the teacher's pipeline, eval transform) and s(x) over a split
  reference.py    what a student is judged against: the validation report, the JL head, the targets
  fresh_probe.py  a new linear probe on s(x) with the teacher's probe hyperparameters
  cost.py         parameters, FLOPs per example, CPU latency (batch 1) and throughput (batch 64)
  table.py        the evaluation table as Markdown

Letters in shapes: B batch, D teacher width, K target width, C classes, N examples.
"""
