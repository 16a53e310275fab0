"""Feature-extraction throughput of the pipeline against a bare ``model(x)`` loop over the same tensors.

    python benchmarks/extraction_overhead.py [--examples 5000] [--threads 1]

The pipeline side is ``features.load_or_extract`` into an empty cache folder: dataset,
transforms, DataLoader, the frozen teacher, float16 shards written atomically and the
final cache file. The bare side runs the same teacher on the same transformed images,
already stacked in memory, under inference_mode. Prints one JSON object with both
throughputs and their ratio (the pipeline's overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import torch

from subdistill import data
from subdistill.features import load_or_extract
from subdistill.pipeline import input_pipeline
from subdistill.recipes import resolve
from subdistill.teachers import load_teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as root:
        config = resolve([
            "recipe=fmnist_k32", "teacher.finetune=false", f"data.limit_test={args.examples}",
            "data.num_workers=0", f"output_root={root}",
        ])
        # Pipeline: from the data files to the cache file.
        start = time.perf_counter()
        teacher_features, _ = load_or_extract(config, "test", progress=False)  # (N, D)
        pipeline_s = time.perf_counter() - start

        # Bare: the same teacher over the same transformed images, already in memory.
        teacher = load_teacher(config.teacher)
        stats, _ = input_pipeline(config, config.teacher, teacher)
        dataset = data.build_dataset(config.data, "test", train_transform=False, stats=stats)
        images = torch.stack([dataset[i][0] for i in range(len(dataset))])  # (N, C, H, W)
        start = time.perf_counter()
        with torch.inference_mode():
            bare = torch.cat([teacher.backbone(batch) for batch in images.split(config.features.batch_size)])
        bare_s = time.perf_counter() - start

    n = len(images)
    print(json.dumps({
        "benchmark": "extraction_overhead",
        "recipe": "fmnist_k32",
        "teacher": "timm:resnet18 (random init, D=512)",
        "examples": n,
        "batch_size": config.features.batch_size,
        "pipeline_seconds": round(pipeline_s, 2),
        "bare_seconds": round(bare_s, 2),
        "pipeline_examples_per_s": round(n / pipeline_s, 1),
        "bare_examples_per_s": round(n / bare_s, 1),
        "pipeline_over_bare_time": round(pipeline_s / bare_s, 3),
        "max_abs_difference_float16": float((teacher_features - bare.half().float()).abs().max()),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} torch threads, torch {torch.__version__}"
        ),
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
    }))


if __name__ == "__main__":
    main()
