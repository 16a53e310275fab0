"""The probe bank: heads see the right inputs, train independently, and JL at K = D matches full width."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from subdistill.config import ProbeConfig
from subdistill.errors import UserError
from subdistill.pca import fit_pca
from subdistill.probes import HeadSpec, ProbeBank, evaluate_probes, sweep_specs, train_probes
from subdistill.projection import JLProjection

PROBE = ProbeConfig(optimizer="adamw", lr=1e-2, weight_decay=1e-4, epochs=4, batch_size=32)


def separable(n: int, d: int = 32, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian classes around well-separated means: a linear probe can score ~100%."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(c, d, generator=torch.Generator().manual_seed(123)) * 3.0
    labels = torch.randint(0, c, (n,), generator=generator)
    return means[labels] + torch.randn(n, d, generator=generator), labels


def test_jl_at_full_width_matches_the_full_probe():
    train_x, train_y = separable(800)
    test_x, test_y = separable(400, seed=1)
    torch.manual_seed(0)
    bank = ProbeBank(32, 4, [HeadSpec("full", 32), HeadSpec("jl", 32, 42)])
    train_probes(bank, train_x.half(), train_y, PROBE, progress=False)
    results = evaluate_probes(bank, test_x, test_y)
    assert results["full"]["accuracy"] > 0.95
    assert abs(results["jl-32"]["accuracy"] - results["full"]["accuracy"]) <= 0.01


def test_heads_train_as_if_alone():
    train_x, train_y = separable(200)
    alone, together = {}, {}
    for specs, out in ([HeadSpec("full", 32)], alone), (sweep_specs(32, [16, 8], 42, [0]), together):
        torch.manual_seed(0)
        bank = ProbeBank(32, 4, specs, pca=fit_pca(train_x, 16))
        train_probes(bank, train_x, train_y, dataclasses.replace(PROBE, epochs=2), progress=False)
        out.update({k: v.clone() for k, v in bank.heads["full"].state_dict().items()})
    assert all(torch.equal(alone[k], together[k]) for k in alone)


def test_a_head_does_not_depend_on_the_other_ks_of_its_sweep():
    train_x, train_y = separable(200)
    weights = []
    for ks in ([16, 8], [8]):
        bank = ProbeBank(32, 4, sweep_specs(32, ks, 42, [0]), pca=fit_pca(train_x, 16), init_seed=3)
        train_probes(bank, train_x, train_y, dataclasses.replace(PROBE, epochs=2), progress=False)
        weights.append({n: bank.heads[n].weight.clone() for n in ("jl-8", "pca-8", "learned-8", "jl-8-seed0")})
    assert all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])


def test_head_inputs_are_the_projections():
    x, _ = separable(50)
    basis = fit_pca(x, 8)
    bank = ProbeBank(32, 4, sweep_specs(32, [8], 42, [7]), pca=basis)
    assert [s.name for s in bank.specs] == ["full", "jl-8", "pca-8", "learned-8", "jl-8-seed7"]
    inputs = bank.inputs(x)
    assert torch.equal(inputs["full"], x)
    assert torch.allclose(inputs["jl-8"], JLProjection(8, 32, 42)(x), atol=1e-5)
    assert torch.allclose(inputs["jl-8-seed7"], JLProjection(8, 32, 7)(x), atol=1e-5)
    assert torch.allclose(inputs["pca-8"], basis.project(x), atol=1e-4)
    # The learned projection starts at R / sqrt(K) and is a trainable parameter; R itself is not.
    assert torch.allclose(inputs["learned-8"], inputs["jl-8"], atol=1e-5)
    trainable = {name for name, p in bank.named_parameters()}
    assert "learned.learned-8" in trainable and not any("fixed" in name for name in trainable)


def test_learned_projection_moves_and_fixed_ones_do_not():
    x, y = separable(200)
    bank = ProbeBank(32, 4, [HeadSpec("jl", 8), HeadSpec("learned", 8)])
    fixed_before, learned_before = bank.fixed.clone(), bank.learned["learned-8"].detach().clone()
    train_probes(bank, x, y, dataclasses.replace(PROBE, optimizer="sgd", epochs=1), progress=False)
    assert torch.equal(bank.fixed, fixed_before)
    assert not torch.equal(bank.learned["learned-8"].detach(), learned_before)


def test_evaluation_reports_accuracy_and_mean_cross_entropy():
    x, y = separable(70)
    bank = ProbeBank(32, 4, [HeadSpec("full", 32)])
    results = evaluate_probes(bank, x, y, batch_size=16)  # batches of 16, 16, 16, 16, 6
    with torch.no_grad():
        logits = bank.heads["full"](x)
    assert results["full"]["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert results["full"]["accuracy"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="K must be"):
        ProbeBank(16, 3, [HeadSpec("jl", 32)])
    with pytest.raises(UserError, match="PCA basis"):
        ProbeBank(16, 3, [HeadSpec("pca", 8)])
    bank = ProbeBank(16, 3, [HeadSpec("full", 16)])
    with pytest.raises(UserError, match="optimizer"):
        train_probes(bank, torch.randn(8, 16), torch.zeros(8, dtype=torch.long), ProbeConfig(optimizer="lbfgs"))
