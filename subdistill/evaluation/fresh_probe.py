"""A fresh linear probe on s(x): how much the student's embedding still holds, whatever the JL head says.

It is trained exactly as validation trains the teacher's probes (probes.train_probes with
the run's probe section: optimiser, learning rate, weight decay, epochs, batch size and
the cosine schedule), as a one-head probe bank whose input is s(x) itself.
"""

from __future__ import annotations

from torch import Tensor

from subdistill.config import ProbeConfig
from subdistill.probes import HeadSpec, ProbeBank, default_device, evaluate_probes, train_probes


def fresh_probe(
    train_embedding: Tensor,
    train_labels: Tensor,
    test_embedding: Tensor,
    test_labels: Tensor,
    num_classes: int,
    probe: ProbeConfig,
    seed: int = 0,
) -> dict[str, float]:
    """{"accuracy", "loss"} on the test split of a linear head K -> C trained on the train split's s(x) (N, K)."""
    k = train_embedding.shape[1]
    # The head's initial weights come from its name and the seed, as in validation's bank.
    bank = ProbeBank(k, num_classes, [HeadSpec("full", k)], init_seed=seed).to(default_device())
    train_probes(bank, train_embedding, train_labels, probe, seed=seed, progress=False)
    return evaluate_probes(bank, test_embedding, test_labels)["full"]
