"""ImageNet-100: an ImageNet folder restricted to the 100 CMC classes.

Layout: <root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG (the usual
ImageFolder layout; the folders may hold all 1000 classes, only the 100 listed in
``imagenet100_classes.txt`` are read). Labels are the position of the wnid in the
sorted list of the 100, whatever subset of them is present on disk. ImageNet has
to be fetched by hand (image-net.org terms), so nothing is downloaded.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Callable, Optional

from torchvision.datasets import ImageFolder

from subdistill.data.base import stable_hash
from subdistill.errors import UserError

log = logging.getLogger(__name__)

CLASS_FILE = Path(__file__).with_name("imagenet100_classes.txt")
SPLIT_FOLDER = {"train": "train", "test": "val"}

# timm's ImageNet defaults (mean/std of ImageNet-1k RGB pixels).
STATS = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "input_size": (3, 224, 224)}


@functools.lru_cache(maxsize=1)
def imagenet100_classes() -> tuple[str, ...]:
    """The 100 wnids, sorted: the label of a wnid is its index here."""
    lines = CLASS_FILE.read_text(encoding="utf-8").splitlines()
    wnids = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if len(set(wnids)) != 100:
        raise RuntimeError(f"{CLASS_FILE} should list 100 distinct wnids, it lists {len(set(wnids))}")
    return tuple(sorted(wnids))


class ImageNet100Folder(ImageFolder):
    """torchvision's ImageFolder that sees only the 100 classes, labelled by the full list.

    Samples are put in a fixed pseudo-random order (a hash of each file's path
    inside its split), so that "the first N" is a mix of classes rather than the
    first class only, and the order does not depend on the file system.
    """

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        wnids = imagenet100_classes()
        present = [w for w in wnids if (Path(directory) / w).is_dir()]
        if not present:
            raise UserError(f"{directory} holds none of the 100 ImageNet-100 class folders (e.g. {wnids[0]}/)")
        if len(present) < len(wnids):
            log.warning("%s holds %d of the 100 ImageNet-100 classes", directory, len(present))
        return present, {w: wnids.index(w) for w in present}

    def __init__(self, root: str, transform: Optional[Callable] = None) -> None:
        super().__init__(root, transform=transform)
        self.classes = list(imagenet100_classes())
        self.class_to_idx = {w: i for i, w in enumerate(self.classes)}

        # Relative paths make the order the same wherever the folder lives.
        def order(sample: tuple[str, int]) -> tuple[int, str]:
            relative = Path(sample[0]).relative_to(root).as_posix()
            return stable_hash(relative), relative

        self.samples = sorted(self.samples, key=order)
        self.imgs = self.samples
        self.targets = [label for _, label in self.samples]

    def keep_first(self, count: int) -> None:
        self.samples = self.samples[:count]
        self.imgs = self.samples
        self.targets = self.targets[:count]


def load_imagenet100(root: str, split: str, transform: Optional[Callable]) -> ImageNet100Folder:
    folder = Path(root) / SPLIT_FOLDER[split]
    if not folder.is_dir():
        raise UserError(
            f"ImageNet-100 {split} split not found: put ImageNet's {SPLIT_FOLDER[split]}/<wnid>/ folders "
            f"(at least the 100 classes of {CLASS_FILE.name}) under {root}"
        )
    try:
        return ImageNet100Folder(str(folder), transform=transform)
    except FileNotFoundError as err:
        raise UserError(f"ImageNet-100 {split}: {err}") from None
