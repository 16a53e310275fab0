"""Peak memory of PCA and of reading the feature cache, against the size of the feature matrix.

    python benchmarks/memory_peak.py [--examples 60000] [--width 512]

Each measurement runs in a fresh child process and reports the growth of its peak
resident set (ru_maxrss) over the baseline taken after imports and after the input
is in memory, so the input itself is not counted. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, torch
from safetensors.torch import load_file, save_file
from subdistill.pca import fit_pca
task, n, d, k, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if task == "write":
    h = torch.randn(n, d, generator=torch.Generator().manual_seed(0)).half()
    save_file({"teacher_features": h, "labels": torch.zeros(n, dtype=torch.long)}, path)
    print(json.dumps({}))
elif task == "pca":
    h = load_file(path)["teacher_features"]  # (N, D) float16, the cache's dtype
    before = peak()
    fit_pca(h, k)
    print(json.dumps({"peak_growth_bytes": peak() - before}))
elif task == "read":
    before = peak()
    h = load_file(path)["teacher_features"].float()  # what the probes train on
    print(json.dumps({"peak_growth_bytes": peak() - before}))
"""


def child(task: str, n: int, d: int, k: int, path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, task, str(n), str(d), str(k), path],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60000)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--k", type=int, default=256)
    args = parser.parse_args()
    n, d = args.examples, args.width
    fp16_bytes, fp32_bytes = n * d * 2, n * d * 4
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "features.safetensors")
        child("write", n, d, args.k, path)
        pca = child("pca", n, d, args.k, path)["peak_growth_bytes"]
        read = child("read", n, d, args.k, path)["peak_growth_bytes"]
    mib = 1 << 20
    print(json.dumps({
        "benchmark": "memory_peak",
        "examples": n, "width": d, "pca_k": args.k,
        "feature_matrix_mib": {"float16": round(fp16_bytes / mib, 1), "float32": round(fp32_bytes / mib, 1)},
        "pca_peak_growth_mib": round(pca / mib, 1),
        "pca_over_float32_matrix": round(pca / fp32_bytes, 2),
        "cache_read_peak_growth_mib": round(read / mib, 1),
        "cache_read_over_float32_matrix": round(read / fp32_bytes, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
    }))


if __name__ == "__main__":
    main()
