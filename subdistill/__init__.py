"""subdistill: subspace-native distillation.

A frozen teacher maps an input to teacher_features h (B, D); a frozen random
projection R (K, D) turns them into targets t = h R^T / sqrt(K) of shape (B, K);
probes check that t is a valid solution subspace; a small student is trained to
map the input straight to t.

Letters used in shapes throughout: B batch, D teacher width, K target width,
C classes, N examples.

``subdistill.load_student(path)`` loads a student that `subdistill export` made:
input -> class logits (and, on request, its K-dim embedding), with neither teacher
nor recipe.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import subdistill` stays light: the exported-student loader pulls in torch.
    if name == "load_student":
        from subdistill.exported import load_student

        return load_student
    raise AttributeError(f"module 'subdistill' has no attribute {name!r}")
