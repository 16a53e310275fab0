"""Two processes of one launch resolve the same config and draw the same R, bit for bit."""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_launch_sees_same_config_and_projection():
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert launcher, "accelerate's launcher should be installed beside this Python"
    # On a machine without a GPU, --multi_gpu starts gloo processes; --cpu would silently start one.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
         str(HERE / "launch_identity.py"), "recipe=fmnist_k32", "tiny=true"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = re.findall(r"IDENTITY rank=(\d) world=(\d) config=(\w+) projection=(\w+)", proc.stdout)
    assert sorted(rank for rank, *_ in lines) == ["0", "1"], proc.stdout
    assert {world for _, world, *_ in lines} == {"2"}
    assert len({config for *_, config, _ in lines}) == 1
    assert len({projection for *_, projection in lines}) == 1
    # seed 42, K=32, D=512: the golden fingerprint of the issue
    assert lines[0][3] == "e97f3de04c7c6ba86354db4402b91d4402ede9c72aabed29a96dd7d635a798ba"
