"""The frozen JL projection: golden values, frozen buffer, safetensors round trip, errors."""

import math

import pytest
import torch
from safetensors.torch import save_file

from subdistill.errors import UserError
from subdistill.projection import JLProjection, draw_matrix, fingerprint

GOLDEN_64_768 = "1c13c2b01f5d89cb9d63376f3c457210250b5b700d6fc43f2f54454ae32cb744"
GOLDEN_32_512 = "e97f3de04c7c6ba86354db4402b91d4402ede9c72aabed29a96dd7d635a798ba"


def test_golden_checksums_and_values():
    projection = JLProjection(64, 768, seed=42)
    assert projection.sha256 == GOLDEN_64_768
    assert torch.allclose(projection.matrix[0, :3], torch.tensor([1.9269, 1.4873, 0.9007]), atol=1e-4)
    assert JLProjection(32, 512, seed=42).sha256 == GOLDEN_32_512


def test_draw_does_not_touch_global_rng():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    draw_matrix(8, 16, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_targets_are_scaled_projection():
    projection = JLProjection(16, 48, seed=3)
    features = torch.randn(5, 48)
    targets = projection(features)
    assert targets.shape == (5, 16)
    assert torch.allclose(targets, features @ projection.matrix.T / math.sqrt(16), atol=1e-6)


def test_expected_norm_is_kept():
    projection = JLProjection(256, 512, seed=0)
    features = torch.randn(2000, 512)
    ratio = projection(features).norm(dim=1) / features.norm(dim=1)
    assert abs(ratio.mean().item() - 1.0) < 0.05


def test_half_features_give_float_targets():
    projection = JLProjection(8, 32)
    assert projection(torch.randn(2, 32).half()).dtype == torch.float32


def test_buffer_not_parameter_and_not_shared():
    projection = JLProjection(8, 32)
    student = torch.nn.Sequential(torch.nn.Linear(4, 8), projection)
    assert list(projection.parameters()) == []
    assert "1.matrix" in student.state_dict()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    optimized = {p.data_ptr() for group in optimizer.param_groups for p in group["params"]}
    assert projection.matrix.data_ptr() not in optimized
    assert not projection.matrix.requires_grad


def test_save_load_round_trip(tmp_path):
    projection = JLProjection(32, 512, seed=42)
    path = tmp_path / "projection.safetensors"
    projection.save(path)
    loaded = JLProjection.load(path)
    assert torch.equal(loaded.matrix, projection.matrix)
    assert (loaded.k, loaded.d, loaded.seed, loaded.sha256) == (32, 512, 42, GOLDEN_32_512)


def test_tampered_file_is_refused(tmp_path):
    projection = JLProjection(4, 8, seed=0)
    path = tmp_path / "projection.safetensors"
    matrix = projection.matrix.clone()
    matrix[0, 0] += 1.0
    save_file({"matrix": matrix}, str(path), metadata={"seed": "0", "k": "4", "d": "8", "sha256": projection.sha256})
    with pytest.raises(UserError, match="damaged"):
        JLProjection.load(path)


@pytest.mark.parametrize("k, d", [(0, 8), (9, 8), (-1, 8)])
def test_bad_k(k, d):
    with pytest.raises(UserError, match="K must be in"):
        JLProjection(k, d)


def test_wrong_feature_width_names_both_sides():
    with pytest.raises(UserError, match=r"last dimension 100.*D=512"):
        JLProjection(32, 512)(torch.randn(2, 100))


def test_fingerprint_is_device_and_layout_independent():
    matrix = draw_matrix(6, 10, seed=5)
    assert fingerprint(matrix) == fingerprint(matrix.T.contiguous().T)


def test_dtype_casts_never_round_r():
    holder = torch.nn.Sequential(JLProjection(32, 512, seed=42))
    holder.half()
    assert holder[0].matrix.dtype == torch.float32
    assert holder[0].sha256 == GOLDEN_32_512


def test_state_dict_with_another_r_is_refused():
    projection = JLProjection(32, 512, seed=42)
    with pytest.raises(UserError, match="seed=42"):
        projection.load_state_dict(JLProjection(32, 512, seed=7).state_dict())
    projection.load_state_dict(JLProjection(32, 512, seed=42).state_dict())


def test_file_whose_seed_does_not_redraw_r_is_refused(tmp_path):
    matrix = draw_matrix(4, 8, seed=0)
    path = tmp_path / "projection.safetensors"
    save_file({"matrix": matrix}, str(path), metadata={"seed": "7", "k": "4", "d": "8", "sha256": fingerprint(matrix)})
    with pytest.raises(UserError, match="seed 7"):
        JLProjection.load(path)


def test_save_into_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot write"):
        JLProjection(4, 8).save(tmp_path / "no" / "such" / "projection.safetensors")
