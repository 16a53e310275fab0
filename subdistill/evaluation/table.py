"""The evaluation as one Markdown table: one row per accuracy, costs on each model's first row."""

from __future__ import annotations

from typing import Any, Optional

METHOD_LABELS = {
    "full": ("full width", "linear probe on h (validate)"),
    "jl": ("JL-{k}", "linear probe on t = R h / sqrt(K) (validate)"),
    "pca": ("PCA-{k}", "linear probe on the top-K principal components (validate)"),
    "learned": ("learned-{k}", "linear probe on a learned K x D projection (validate)"),
}
HEADER = (
    "| model | width | accuracy (%) | how the accuracy is read | target MSE | cosine | parameters "
    "| FLOPs/example | latency b=1 (ms) | throughput b=64 (ex/s) |"
)


def pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def human(value: Optional[float]) -> str:
    """11176512 -> 11.18M."""
    if value is None:
        return "-"
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.2f}{suffix}"
    return f"{value:.0f}"


def cost_cells(cost: Optional[dict]) -> list[str]:
    if not cost:
        return ["", "", "", ""]
    return [
        human(cost["parameters"]),
        human(cost["flops_per_example"]),
        f"{cost['latency_ms']:.2f}",
        f"{cost['throughput']:.0f}",
    ]


def row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def teacher_rows(teacher: dict, k: int) -> list[str]:
    rows = []
    if teacher.get("own_head_accuracy") is not None or teacher.get("cost"):
        rows.append(row([f"teacher {teacher['name']}", teacher["D"], pct(teacher.get("own_head_accuracy")),
                         "its own head" if teacher.get("own_head_accuracy") is not None else "(no head)",
                         "", "", *cost_cells(teacher.get("cost"))]))
    for method, probe in teacher["probes"].items():
        label, how = METHOD_LABELS[method]
        width = teacher["D"] if method == "full" else k
        accuracy = None if probe is None else probe["accuracy"]
        rows.append(row([f"teacher probe, {label.format(k=k)}", width, pct(accuracy), how, "", "", "", "", "", ""]))
    return rows


def student_rows(student: dict) -> list[str]:
    kind = "student" if student["objective"] == "subspace" else "baseline"
    name = f"{kind} `{student['run']}` ({student['objective']})"
    readings = []
    if student["objective"] == "subspace":
        readings.append((student.get("jl_head_accuracy"), f"teacher's JL-{student['k']} head on s(x), unchanged"))
    if student.get("own_head_accuracy") is not None:
        readings.append((student["own_head_accuracy"], "its own head"))
    readings.append((student["fresh_probe"]["accuracy"], "fresh linear probe on s(x)"))

    targets = student.get("targets") or {}
    rows = []
    for i, (accuracy, how) in enumerate(readings):
        first = i == 0
        agreement = [f"{targets['mse']:.4f}", f"{targets['cosine']:.4f}"] if first and targets else ["", ""]
        cells = cost_cells(student.get("cost")) if first else cost_cells(None)
        rows.append(row([name if first else "", student["k"], pct(accuracy), how, *agreement, *cells]))
    return rows


def ratios(teacher_cost: Optional[dict], student: dict) -> Optional[str]:
    cost = student.get("cost")
    if not teacher_cost or not cost:
        return None
    params = teacher_cost["parameters"] / max(1, cost["parameters"])
    flops = teacher_cost["flops_per_example"] / max(1, cost["flops_per_example"])
    latency = teacher_cost["latency_ms"] / max(1e-9, cost["latency_ms"])
    throughput = cost["throughput"] / max(1e-9, teacher_cost["throughput"])
    return (
        f"Student `{student['run']}` against the teacher: parameters / {params:.1f}, FLOPs / {flops:.1f}, "
        f"latency / {latency:.2f}, throughput x {throughput:.2f}."
    )


def markdown(evaluation: dict) -> str:
    teacher, k = evaluation["teacher"], evaluation["k"]
    timing, probe = evaluation["timing"], evaluation["probe"]
    lines = [
        f"# Evaluation of {evaluation['run']} (recipe {evaluation['recipe']}, K={k})",
        "",
        f"Accuracies on the {evaluation['test_examples']} test examples. Fresh probes are trained on s(x) of the "
        f"{evaluation['train_examples']} training examples with the teacher's probe settings ({probe['optimizer']}, "
        f"lr {probe['lr']}, weight decay {probe['weight_decay']}, {probe['epochs']} epoch(s), "
        f"batch {probe['batch_size']}). "
        f"Costs: input -> logits on the CPU ({timing['threads']} thread(s), median of {timing['repeats']} passes); "
        "FLOPs per example from torch's flop counter.",
        "",
        HEADER,
        "|---|---|---|---|---|---|---|---|---|---|",
        *teacher_rows(teacher, k),
    ]
    for student in evaluation["students"]:
        lines += student_rows(student)
    summary = [ratios(teacher.get("cost"), student) for student in evaluation["students"][:1]]
    lines += ["", *[line for line in summary if line]]
    if evaluation.get("notes"):
        lines += ["", "Notes:", *[f"- {note}" for note in evaluation["notes"]]]
    return "\n".join(lines) + "\n"
