"""The two validation figures: t-SNE before and after projection, and probe accuracy against K.

Both are PNG files written into the run folder with matplotlib's Agg backend
(no display needed). t-SNE runs with one seed and one set of settings for all
panels, so differences between panels come from the features alone.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from torch import Tensor  # noqa: E402


def tsne_embedding(features: Tensor, seed: int = 0) -> np.ndarray:
    """(N, K) features -> (N, 2) t-SNE coordinates with fixed settings."""
    n = len(features)
    # Perplexity must stay below N; 30 is the usual value for samples of a few hundred or more.
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=1000)
    return tsne.fit_transform(features.double().numpy())


def tsne_figure(panels: dict[str, Tensor], labels: Tensor, path: Path, seed: int = 0) -> Path:
    """One t-SNE panel per entry of {title: (N, K) features}, points coloured by label."""
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2), squeeze=False)
    colours = labels.numpy()
    cmap = "tab20" if colours.max(initial=0) < 20 else "nipy_spectral"  # tab20 repeats colours past 20 classes
    for axis, (title, features) in zip(axes[0], panels.items()):
        embedding = tsne_embedding(features, seed)
        axis.scatter(embedding[:, 0], embedding[:, 1], c=colours, cmap=cmap, s=4, linewidths=0)
        axis.set_title(title, fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"t-SNE of {len(labels)} test examples (seed {seed})", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def accuracy_figure(curves: dict[str, dict[int, float]], baseline: float, d: int, path: Path, title: str = "") -> Path:
    """Accuracy (%) against K for each method in {method: {K: accuracy}}, the full-width probe drawn across."""
    figure, axis = plt.subplots(figsize=(5.5, 4))
    for method, by_k in curves.items():
        ks = sorted(by_k)
        axis.plot(ks, [100 * by_k[k] for k in ks], marker="o", label=method)
    axis.axhline(100 * baseline, color="black", linestyle="--", label=f"full width (D={d})")
    axis.set_xscale("log", base=2)
    all_ks = sorted({k for by_k in curves.values() for k in by_k})
    axis.set_xticks(all_ks, [str(k) for k in all_ks])
    axis.set_xlabel("K (target width)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(title or "linear probe accuracy against K", fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
