"""Image teachers: parity with timm and torchvision, the frozen boundary, weight files, checkpoints."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.models import get_model

from subdistill.config import TeacherConfig
from subdistill.errors import UserError
from subdistill.teachers import (
    Teacher,
    build_backbone,
    build_tokenizer,
    image_stats,
    load_teacher,
    save_teacher_checkpoint,
    teacher_fingerprint,
)

TINY_VIT = {"depth": 2, "embed_dim": 32, "num_heads": 2, "img_size": 32}
VIT = TeacherConfig(source="timm", name="vit_tiny_patch16_224", pretrained=False, num_classes=3, model_kwargs=TINY_VIT)
RESNET = TeacherConfig(source="timm", name="resnet18", pretrained=False)


def images(batch: int = 3, chans: int = 3, side: int = 32) -> torch.Tensor:
    return torch.randn(batch, chans, side, side, generator=torch.Generator().manual_seed(1))


def library_state(backbone, classifier: str) -> dict[str, torch.Tensor]:
    """Backbone keys back to the library's own: encoder.* -> *, head.* -> <classifier>.*."""
    state = {}
    for key, value in backbone.state_dict().items():
        prefix, _, rest = key.partition(".")
        state[rest if prefix == "encoder" else f"{classifier}.{rest}"] = value
    return state


def perturb(module: nn.Module) -> None:
    """Move every weight away from the seeded init, so a reload cannot pass by re-drawing it."""
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.01 * torch.randn_like(param))


def test_timm_vit_cls_is_timm_pre_logits():
    backbone = build_backbone(VIT)
    assert (backbone.feature, backbone.feature_dim, backbone.num_classes) == ("cls", 32, 3)

    reference = timm.create_model(VIT.name, pretrained=False, num_classes=3, **TINY_VIT).eval()
    reference.load_state_dict(library_state(backbone, "head"))
    no_head = timm.create_model(VIT.name, pretrained=False, num_classes=0, **TINY_VIT).eval()
    no_head.load_state_dict(library_state(backbone, "head"), strict=False)

    x = images()
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
        teacher_features = backbone(x)
        assert teacher_features.shape == (3, 32)
        assert (teacher_features - expected).abs().max() < 1e-5
        assert (teacher_features - no_head(x)).abs().max() < 1e-5
        assert (backbone.logits(x) - reference(x)).abs().max() < 1e-5


def test_timm_resnet18_is_num_classes_zero_model():
    backbone = build_backbone(RESNET)
    assert (backbone.feature, backbone.feature_dim, backbone.head) == ("pre_logits", 512, None)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    reference.load_state_dict(library_state(backbone, "fc"))

    avgpool = build_backbone(TeacherConfig(source="timm", name="resnet18", pretrained=False, feature="avgpool"))
    x = images()
    with torch.no_grad():
        assert (backbone(x) - reference(x)).abs().max() < 1e-5
        assert (avgpool(x) - reference(x)).abs().max() < 1e-5


def test_torchvision_resnet18_is_its_avgpool_output():
    cfg = TeacherConfig(source="torchvision", name="resnet18", pretrained=False, num_classes=5)
    backbone = build_backbone(cfg)
    assert backbone.feature_dim == 512
    reference = get_model("resnet18", weights=None, num_classes=5).eval()
    reference.load_state_dict(library_state(backbone, "fc"))

    # The reference feature is what its own avgpool hands to fc.
    pooled = {}
    reference.avgpool.register_forward_hook(lambda module, args, out: pooled.update(h=out.flatten(1)))
    x = images()
    with torch.no_grad():
        reference_logits = reference(x)
        assert (backbone(x) - pooled["h"]).abs().max() < 1e-5
        assert (backbone.logits(x) - reference_logits).abs().max() < 1e-5


@pytest.fixture(scope="module")
def resnet_teacher() -> Teacher:
    return load_teacher(TeacherConfig(source="timm", name="resnet18", pretrained=False, num_classes=4))


def test_teacher_stays_eval_inside_a_training_parent(resnet_teacher):
    parent = nn.ModuleDict({"teacher": resnet_teacher, "student": nn.Linear(512, 8)})
    parent.train()
    assert parent["student"].training
    assert not any(module.training for module in resnet_teacher.modules())

    # Even a call past the wrapper is undone at the boundary.
    resnet_teacher.backbone.train()
    resnet_teacher(images())
    assert not any(module.training for module in resnet_teacher.modules())


def test_batch_norm_statistics_never_change(resnet_teacher):
    parent = nn.ModuleDict({"teacher": resnet_teacher}).train()
    before = {k: v.clone() for k, v in resnet_teacher.state_dict().items() if "running" in k or "num_batches" in k}
    assert len(before) > 10
    for _ in range(2):
        resnet_teacher(images() * 5 + 3)
    after = resnet_teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert parent.training


def test_batch_norm_put_in_train_mode_directly_is_undone(resnet_teacher):
    before = {k: v.clone() for k, v in resnet_teacher.state_dict().items() if "running" in k}
    # A common pattern: put only the batch-norm layers of a whole model in train mode.
    resnet_teacher.apply(lambda m: m.train() if isinstance(m, nn.modules.batchnorm._BatchNorm) else None)
    resnet_teacher.backbone.encoder.train()
    resnet_teacher(images() * 5 + 3)
    after = resnet_teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(module.training for module in resnet_teacher.modules())


def test_no_gradients_but_outputs_feed_autograd(resnet_teacher):
    assert not any(p.requires_grad for p in resnet_teacher.parameters())
    assert resnet_teacher.has_head and resnet_teacher.feature_dim == 512 and resnet_teacher.modality == "image"
    teacher_features = resnet_teacher(images())
    assert not teacher_features.is_inference() and not teacher_features.requires_grad

    # A student's loss against the features must backpropagate into the student only.
    student = nn.Linear(512, 512)
    loss = (student(teacher_features) - teacher_features).pow(2).mean()
    loss.backward()
    assert student.weight.grad is not None
    assert resnet_teacher.logits(images()).shape == (3, 4)


def test_random_init_is_deterministic_and_leaves_global_rng():
    rng_before = torch.random.get_rng_state()
    first, second = build_backbone(VIT), build_backbone(VIT)
    assert torch.equal(rng_before, torch.random.get_rng_state())
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), key


def test_timm_local_weights_file(tmp_path):
    torch.manual_seed(123)
    reference = timm.create_model("resnet18", pretrained=False, in_chans=1).eval()
    state = reference.state_dict()
    save_file(state, str(tmp_path / "r18.safetensors"))
    torch.save(state, tmp_path / "r18.pt")

    # pretrained=true with a local file reads the file and never the hub; the file's fc is not needed.
    x = images(chans=1)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
        for name in ("r18.safetensors", "r18.pt"):
            cfg = TeacherConfig(name="resnet18", weights=str(tmp_path / name), model_kwargs={"in_chans": 1})
            assert (build_backbone(cfg)(x) - expected).abs().max() < 1e-5

        # With a head, the file's own classifier becomes it.
        cfg = TeacherConfig(
            name="resnet18",
            weights=str(tmp_path / "r18.safetensors"),
            num_classes=1000,
            model_kwargs={"in_chans": 1},
        )
        assert (build_backbone(cfg).logits(x) - reference(x)).abs().max() < 1e-5

    del state["layer1.0.conv1.weight"]
    save_file(state, str(tmp_path / "broken.safetensors"))
    broken = TeacherConfig(name="resnet18", weights=str(tmp_path / "broken.safetensors"), model_kwargs={"in_chans": 1})
    with pytest.raises(UserError, match="missing keys: layer1.0.conv1.weight"):
        build_backbone(broken)


@pytest.mark.parametrize("cfg", [VIT, TeacherConfig(source="torchvision", name="resnet18", num_classes=5)])
def test_checkpoint_round_trip(tmp_path, cfg):
    cfg = dataclasses.replace(cfg, pretrained=False)
    backbone = build_backbone(cfg)
    perturb(backbone)
    folder = save_teacher_checkpoint(backbone, cfg, tmp_path / "teacher")
    meta = json.loads((folder / "teacher.json").read_text())
    assert (meta["feature_dim"], meta["num_classes"]) == (backbone.feature_dim, cfg.num_classes)
    assert meta["teacher"]["source"] == cfg.source and meta["teacher"]["pretrained"] is False

    loaded = TeacherConfig(source="checkpoint", name=str(folder))
    teacher = load_teacher(loaded)
    x = images()
    with torch.no_grad():
        assert torch.equal(teacher(x), backbone(x))
        assert torch.equal(teacher.logits(x), backbone.logits(x))
    assert image_stats(loaded, teacher) == image_stats(cfg, backbone)
    assert build_tokenizer(loaded) is None
    assert teacher_fingerprint(loaded) == f"checkpoint:sha256={meta['sha256']}|feature={backbone.feature}"


def test_checkpoint_keys_are_checked_strictly(tmp_path):
    folder = save_teacher_checkpoint(build_backbone(RESNET), RESNET, tmp_path / "teacher")
    state = load_file(str(folder / "teacher.safetensors"))
    state["encoder.extra.weight"] = state.pop("encoder.conv1.weight")
    save_file(state, str(folder / "teacher.safetensors"))
    cfg = TeacherConfig(source="checkpoint", name=str(folder))
    with pytest.raises(UserError, match="sha256"):
        load_teacher(cfg)

    # With the fingerprint brought up to date, the key check itself must name both keys.
    meta = json.loads((folder / "teacher.json").read_text())
    meta["sha256"] = hashlib.sha256((folder / "teacher.safetensors").read_bytes()).hexdigest()
    (folder / "teacher.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=r"missing keys: encoder\.conv1\.weight.*unexpected keys: encoder\.extra"):
        load_teacher(cfg)


def test_user_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="timm, hf, torchvision, checkpoint"):
        build_backbone(TeacherConfig(source="keras"))
    with pytest.raises(UserError, match="did you mean resnet18"):
        build_backbone(TeacherConfig(name="resnet_18", pretrained=False))
    with pytest.raises(UserError, match="unknown torchvision model 'resnet_18'"):
        build_backbone(TeacherConfig(source="torchvision", name="resnet_18", pretrained=False))
    with pytest.raises(UserError, match="rejects teacher.model_kwargs"):
        build_backbone(TeacherConfig(name="resnet18", pretrained=False, model_kwargs={"in_chanz": 1}))
    with pytest.raises(UserError, match="feature=pooler does not apply"):
        build_backbone(TeacherConfig(name="resnet18", pretrained=False, feature="pooler"))
    with pytest.raises(UserError, match="not a teacher checkpoint"):
        build_backbone(TeacherConfig(source="checkpoint", name=str(tmp_path)))
    with pytest.raises(UserError, match="weights file not found"):
        build_backbone(TeacherConfig(name="resnet18", weights=str(tmp_path / "none.safetensors")))
    with pytest.raises(UserError, match="has no classification head"):
        build_backbone(RESNET).logits(images())


def test_image_stats_and_fingerprints(tmp_path):
    grey = TeacherConfig(name="resnet18", pretrained=False, model_kwargs={"in_chans": 1})
    stats = image_stats(grey, load_teacher(grey))
    assert stats["input_size"] == (1, 224, 224)
    assert stats["mean"] == pytest.approx(((0.485 + 0.456 + 0.406) / 3,))
    assert image_stats(VIT, build_backbone(VIT))["input_size"] == (3, 32, 32)

    # torchvision reports its default weights' preprocessing, pretrained or not.
    tv = TeacherConfig(source="torchvision", name="resnet18", pretrained=False)
    stats = image_stats(tv, build_backbone(tv))
    assert stats["input_size"] == (3, 224, 224) and stats["crop_pct"] == pytest.approx(224 / 256)
    assert stats["mean"] == pytest.approx((0.485, 0.456, 0.406))

    assert teacher_fingerprint(RESNET) == "timm:resnet18:random-init:seed=0:num_classes=0|feature=auto"
    assert teacher_fingerprint(TeacherConfig(name="resnet50")) == "timm:resnet50:pretrained|feature=auto"
    weights = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(2)}, str(weights))
    first = teacher_fingerprint(TeacherConfig(name="resnet18", weights=str(weights)))
    save_file({"a": torch.ones(2)}, str(weights))
    assert first != teacher_fingerprint(TeacherConfig(name="resnet18", weights=str(weights)))
