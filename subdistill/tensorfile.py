"""safetensors files written with the permissions any other file gets.

safetensors (0.8) writes its files readable by their owner only (mode 0600), whatever the
umask; an exported student or a shared feature cache must be readable like the ONNX
file beside it, so every .safetensors file of the package is written here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_tensors(tensors: dict[str, torch.Tensor], path: Path | str, metadata: Optional[dict[str, str]] = None) -> None:
    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, 0o666 & ~current_umask())
