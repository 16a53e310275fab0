"""subdistill: subspace-native distillation.

A frozen teacher maps an input to teacher_features h (B, D); a frozen random
projection R (K, D) turns them into targets t = h R^T / sqrt(K) of shape (B, K);
probes check that t is a valid solution subspace; a small student is trained to
map the input straight to t.

Letters used in shapes throughout: B batch, D teacher width, K target width,
C classes, N examples.
"""

__version__ = "0.1.0"
