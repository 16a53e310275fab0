"""Run under a multi-process launch: each rank prints its config digest and R fingerprint."""

import sys

import torch

from accelerate import PartialState

from subdistill.projection import JLProjection
from subdistill.recipes import resolve
from subdistill.runs import config_digest
from subdistill.teachers import build_backbone

# Without a GPU, accelerate forms the gloo group only for a state created with cpu=True.
state = PartialState(cpu=not torch.cuda.is_available())
config = resolve(sys.argv[1:])
width = build_backbone(config.teacher).feature_dim
projection = JLProjection(config.projection.k, width, config.projection.seed).to(state.device)
print(
    f"IDENTITY rank={state.process_index} world={state.num_processes} "
    f"config={config_digest(config)} projection={projection.sha256}",
    flush=True,
)
