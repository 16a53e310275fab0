"""`subdistill evaluate` on tiny Fashion-MNIST runs: a subspace student and the three baselines
(ce, kd, fitnets) of the same student, judged against the teacher's probes in one table."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest
import torch
import yaml
from eval_helpers import OBJECTIVES, tiny_args, tiny_runs
from train_helpers import run_inline

from subdistill import evaluate
from subdistill.errors import UserError
from subdistill.evaluation.cost import Classifier, measure
from subdistill.evaluation.fresh_probe import fresh_probe
from subdistill.training.students import FashionCNN


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    runs = tiny_runs(tmp_path_factory)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        # The run by its path, the baselines by their names under output_root.
        evaluate.main([f"run={runs['subspace']}", "baselines=[ce,kd,fitnets]", f"output_root={runs['root']}",
                       "repeats=2", "threads=1"])
    evaluation = json.loads((runs["subspace"] / "evaluation.json").read_text())
    return runs, evaluation, printed.getvalue()


def test_each_student_is_read_as_training_scored_it(evaluated):
    runs, evaluation, _ = evaluated
    students = {student["objective"]: student for student in evaluation["students"]}
    assert [s["objective"] for s in evaluation["students"]] == list(OBJECTIVES)
    assert evaluation["test_examples"] == 33 and evaluation["train_examples"] == 64

    # The engine's last evaluation read s(x) through the same heads: the JL head for the
    # subspace student (validation ran first), its own head for ce and kd.
    trained = {objective: runs["summaries"][objective]["eval"] for objective in OBJECTIVES}
    subspace = students["subspace"]
    assert subspace["jl_head_accuracy"] == pytest.approx(trained["subspace"]["accuracy"], abs=1e-12)
    assert subspace["targets"]["squared_error"] == pytest.approx(trained["subspace"]["loss"], rel=2e-2)
    assert subspace["targets"]["cosine"] == pytest.approx(trained["subspace"]["cosine"], abs=2e-3)
    assert subspace["targets"]["mse"] == pytest.approx(subspace["targets"]["squared_error"] / 32)
    for objective in ("ce", "kd"):
        assert students[objective]["own_head_accuracy"] == pytest.approx(trained[objective]["accuracy"], abs=1e-12)
        assert students[objective]["jl_head_accuracy"] is None and students[objective]["targets"] is None
    assert students["fitnets"]["own_head_accuracy"] is None and students["fitnets"]["jl_head_accuracy"] is None

    # Costs count the student and the head it is read through (none for fitnets: its regressor is dropped).
    body = runs["summaries"]["subspace"]["student_parameters"]
    head = 32 * 10 + 10
    assert [students[o]["cost"]["parameters"] for o in OBJECTIVES] == [body + head] * 3 + [body]
    for student in students.values():
        assert 0.0 <= student["fresh_probe"]["accuracy"] <= 1.0
        assert student["cost"]["latency_ms"] > 0 and student["cost"]["throughput"] > 0
        assert student["cost"]["threads"] == 1 and student["cost"]["batch"] == 64


def test_teacher_rows_come_from_validation_and_its_full_probe_is_reproduced(evaluated):
    import timm

    from subdistill.features import load_or_extract
    from subdistill.recipes import resolve

    runs, evaluation, _ = evaluated
    report = json.loads((runs["validation"] / "report.json").read_text())
    teacher = evaluation["teacher"]
    for method, name in (("full", "full"), ("jl", "jl-32"), ("pca", "pca-32"), ("learned", "learned-32")):
        assert teacher["probes"][method]["accuracy"] == report["heads"][name]["accuracy"]
    assert teacher["D"] == 512 and teacher["validation_report"] == str(runs["validation"] / "report.json")
    reference = timm.create_model("resnet18", pretrained=False, in_chans=1, num_classes=10)
    assert teacher["cost"]["parameters"] == sum(p.numel() for p in reference.parameters())

    # A fresh probe is trained exactly as validation trains its probes: given h itself, it
    # reproduces the teacher's full-width probe.
    config = resolve(tiny_args(runs["root"]))
    train_h, train_y = load_or_extract(config, "train", progress=False)
    test_h, test_y = load_or_extract(config, "test", progress=False)
    again = fresh_probe(train_h, train_y, test_h, test_y, 10, config.probe, config.seed)
    assert again["accuracy"] == report["heads"]["full"]["accuracy"]
    assert again["loss"] == pytest.approx(report["heads"]["full"]["loss"], rel=1e-5)


def test_table_is_printed_and_written(evaluated):
    runs, evaluation, printed = evaluated
    table = (runs["subspace"] / "evaluation.md").read_text()
    assert table in printed
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert len(rows) == 1 + 4 + 2 + 2 + 2 + 1  # teacher, its 4 probes, 2 readings per student (fitnets: 1)
    assert rows[0].startswith("| teacher timm:resnet18 | 512 |")
    assert rows[2].startswith("| teacher probe, JL-32 | 32 |")
    assert "| student `subspace` (subspace) | 32 |" in rows[5] and "teacher's JL-32 head on s(x)" in rows[5]
    assert f"{100 * evaluation['students'][0]['jl_head_accuracy']:.2f}" in rows[5]
    assert "baseline `kd` (kd)" in rows[9] and "its own head" in rows[9]
    assert "fresh linear probe on s(x)" in rows[-1] and "baseline `fitnets`" in rows[-1]
    assert "Student `subspace` against the teacher: parameters / " in table


def test_baseline_losses_match_torch_and_their_settings_are_checked():
    import dataclasses

    import torch.nn.functional as F

    from subdistill.config import TrainConfig
    from subdistill.recipes import resolve
    from subdistill.training import baselines
    from subdistill.training.targets import choose_mode

    generator = torch.Generator().manual_seed(0)
    inputs, labels = torch.randn(5, 6, generator=generator), torch.tensor([0, 2, 1, 1, 0])
    teacher_logits, teacher_features = torch.randn(5, 3, generator=generator), torch.randn(5, 7, generator=generator)
    train = TrainConfig(kd_temperature=2.0, ce_weight=0.5)
    body = torch.nn.Linear(6, 4)  # the student body x -> R^K, K=4

    kd = baselines.wrap("kd", body, 4, 3, None)
    logits = kd.extra(body(inputs))
    loss, parts = baselines.loss("kd", kd, inputs, labels, teacher_logits, train)
    hinton = F.kl_div(F.log_softmax(logits / 2, 1), F.softmax(teacher_logits / 2, 1), reduction="batchmean") * 4
    assert loss.item() == pytest.approx((hinton + 0.5 * F.cross_entropy(logits, labels)).item(), rel=1e-6)
    assert set(parts) == {"kd", "ce"}
    ce = baselines.wrap("ce", body, 4, 3, None)
    assert baselines.loss("ce", ce, inputs, labels, None, train)[0].item() == pytest.approx(
        F.cross_entropy(ce.extra(body(inputs)), labels).item(), rel=1e-6)
    fitnets = baselines.wrap("fitnets", body, 4, 3, 7)
    assert baselines.loss("fitnets", fitnets, inputs, labels, teacher_features, train)[0].item() == pytest.approx(
        F.mse_loss(fitnets.extra(body(inputs)), teacher_features).item(), rel=1e-6)

    config = resolve(["recipe=fmnist_k32", "tiny=true"])

    def with_train(**settings):
        return dataclasses.replace(config, train=dataclasses.replace(config.train, **settings))

    assert choose_mode(with_train(objective="ce", targets="cached")) == "none"
    assert choose_mode(with_train(objective="kd", targets="auto")) == "online"
    with pytest.raises(UserError, match="train.objective=kd needs the teacher's logits"):
        choose_mode(with_train(objective="kd", targets="cached"))
    with pytest.raises(UserError, match="objective=fitnets does not use it"):
        baselines.check_objective(with_train(objective="fitnets", kd_weight=1.0))
    with pytest.raises(UserError, match="train.ce_weight does not apply to objective=ce"):
        baselines.check_objective(with_train(objective="ce", ce_weight=1.0))
    with pytest.raises(UserError, match="train.objective must be one of subspace, ce, kd, fitnets"):
        resolve(["recipe=fmnist_k32", "train.objective=hinton"])


def test_flop_counter_agrees_with_the_formula_and_threads_are_restored():
    model = Classifier(FashionCNN(k=32, in_chans=1, width=8), torch.nn.Linear(32, 10))
    widths, sides = [1, 8, 8, 16, 16, 16], [28, 28, 14, 14, 7]
    convs = sum(2 * c_in * c_out * 9 * side * side for c_in, c_out, side in zip(widths, widths[1:], sides))
    expected = convs + 2 * 16 * 32 + 2 * 32 * 10  # the body's linear to K, then the head
    before = torch.get_num_threads()
    cost = measure(model, torch.randn(1, 1, 28, 28), torch.randn(64, 1, 28, 28), repeats=2, threads=1)
    assert cost["flops_per_example"] == expected
    assert cost["parameters"] == sum(p.numel() for p in model.parameters())
    assert cost["threads"] == 1 and torch.get_num_threads() == before


def test_evaluate_refuses_what_it_cannot_judge(evaluated, tmp_path):
    runs, _, _ = evaluated
    root = runs["root"]
    with pytest.raises(UserError, match="did you mean repeats"):
        evaluate.main(["run=subspace", f"output_root={root}", "repeat=3"])
    with pytest.raises(UserError, match="baselines names ce more than once"):
        evaluate.main(["run=subspace", f"output_root={root}", "baselines=[ce,kd,ce]"])
    with pytest.raises(UserError, match="repeats must be a whole number"):
        evaluate.main(["run=subspace", f"output_root={root}", "repeats=0"])
    only_students = r"neither a run folder nor a run name \(runs under .*: ce, fitnets, kd, subspace\)"
    with pytest.raises(UserError, match=only_students):  # the validation folder beside them is not a run
        evaluate.main(["run=nope", f"output_root={root}"])

    # A run paused before its last step has no student yet.
    run_inline(tiny_args(tmp_path, "run=paused", "train.stop_at=1"))
    with pytest.raises(UserError, match="holds no finished student") as refused:
        evaluate.main([f"run={tmp_path / 'paused'}"])
    hint = str(refused.value).split("finish it with: ")[1]
    assert "tiny=true" in hint and f"output_root={tmp_path}" in hint  # the run's own settings
    assert "stop_at" not in hint  # and to the end: the pause that left it unfinished is not repeated
    assert hint.endswith(f"resume={tmp_path / 'paused'}")

    # A baseline scored on other test examples cannot share the table.
    other = tmp_path / "other-test-split"
    shutil.copytree(runs["ce"], other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["data"]["limit_test"] = 20
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UserError, match="another test split"):
        evaluate.main([f"run={runs['subspace']}", f"baselines=[{other}]"])


def test_a_text_student_is_judged_the_same_way(tmp_path):
    args = ["recipe=wordnet_minilm_k32", "tiny=true", "teacher.finetune=false", "data.limit_train=16",
            "data.limit_test=8", "student.kind=text_cnn", "train.objective=ce", "run=text", f"output_root={tmp_path}"]
    summary = run_inline(args)
    evaluation = evaluate.evaluate_run(tmp_path / "text", [], repeats=1, threads=1)
    (student,) = evaluation["students"]
    assert student["own_head_accuracy"] == pytest.approx(summary["eval"]["accuracy"], abs=1e-12)
    assert evaluation["teacher"]["D"] == 32 and evaluation["test_examples"] == 8
    assert student["cost"]["flops_per_example"] > 0 and evaluation["teacher"]["cost"]["flops_per_example"] > 0
    assert any("no validation of this teacher at K=16" in note for note in evaluation["notes"])
    assert "| teacher probe, JL-16 | 16 | - |" in (tmp_path / "text" / "evaluation.md").read_text()
