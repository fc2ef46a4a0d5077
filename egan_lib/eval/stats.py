"""Statistics every number of the book carries: the Wilson interval of an accuracy, the normal interval
of a mean, and the two-decimal eps keys of the results files."""
from __future__ import annotations

import math
import numbers

import torch

from .._validate import check_eps


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n (z = 1.96: 95%).

    Unlike the normal ("Wald") interval it stays inside [0, 1] and is not empty at k = 0 or k = n:
    ``wilson_interval(0, 10) == (0.0, 0.2775...)``.
    """
    for v, name in ((k, "k"), (n, "n")):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name}: expected an integer count, got {type(v).__name__}")
    k, n = int(k), int(n)
    if n < 1:
        raise ValueError(f"n: expected at least one trial (n >= 1), got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k: expected 0 <= k <= n = {n}, got {k}")
    if isinstance(z, bool) or not isinstance(z, numbers.Real) or not math.isfinite(z) or z <= 0:
        raise ValueError(f"z: expected a finite number > 0, got {z!r}")
    p = k / n
    z2 = float(z) ** 2
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, center - half)
    hi = 1.0 if k == n else min(1.0, center + half)
    return lo, hi


def eps_key(eps) -> str:
    """The JSON key of an eps: two decimals ("0.30"); eps that two decimals cannot hold are rejected."""
    e = check_eps(eps, "eps")
    if abs(round(e, 2) - e) > 1e-6:
        raise ValueError(f"eps: {e} cannot be written with two decimals (the results keys are like '0.30'); "
                         "use a grid of multiples of 0.01")
    return f"{e:.2f}"


def accuracy_ci(correct: torch.Tensor) -> tuple[float, list[float], int]:
    """(accuracy, [lo, hi] Wilson 95%, n) of a boolean tensor of per-image outcomes."""
    if not isinstance(correct, torch.Tensor) or correct.dim() != 1 or correct.numel() == 0:
        raise ValueError("correct: expected a non-empty 1-D tensor of per-image outcomes")
    n, k = correct.numel(), int(correct.sum())
    return k / n, list(wilson_interval(k, n)), n


def mean_ci(values: torch.Tensor) -> tuple[float, float, int]:
    """Mean, half-width of a normal 95% interval, and n."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values: expected a torch.Tensor, got {type(values).__name__}")
    v = values.double().flatten()
    n = len(v)
    if n == 0:
        raise ValueError("values: empty")
    half = 1.96 * float(v.std()) / math.sqrt(n) if n > 1 else float("nan")
    return float(v.mean()), half, n


def accuracy_summary(correct: dict, threat_model: str, **extra) -> dict:
    """{eps: per-image outcomes} -> the result dict every attack returns:
    {"threat_model", "accuracy": {eps: float}, "ci95": {eps: [lo, hi]}, "n", **extra}."""
    if not isinstance(correct, dict) or not correct:
        raise ValueError("correct: expected a non-empty dict {eps: boolean tensor of per-image outcomes}")
    acc, ci, ns = {}, {}, set()
    for e, c in correct.items():
        acc[e], ci[e], n = accuracy_ci(c)
        ns.add(n)
    if len(ns) != 1:
        raise ValueError(f"correct: every eps needs the same number of images, got {sorted(ns)}")
    return {"threat_model": threat_model, "accuracy": acc, "ci95": ci, "n": ns.pop(), **extra}
