"""Input checks shared by every public function (one place, one wording)."""
from __future__ import annotations

import math
import numbers

import torch

IMAGE_SHAPE = (1, 28, 28)


def check_images(x, name: str = "x") -> torch.Tensor:
    """Check a batch of images: float tensor, shape (N, 1, 28, 28), N >= 1, finite, in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of images with shape (N, 1, 28, 28), "
                        f"got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor with values in [0, 1], got dtype {x.dtype} "
                        "(convert uint8 images with egan_lib.data.to_float)")
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"{name}: expected shape (N, 1, 28, 28), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty batch (N = 0); expected at least one image")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or inf; expected finite pixel values in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: pixel values must lie in [0, 1], got min {lo:.4g} and max {hi:.4g}")
    return x


def check_labels(y, n: int | None = None, name: str = "y", num_classes: int = 10) -> torch.Tensor:
    """Check integer class labels of shape (N,) in [0, num_classes)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of int64 labels, got {type(y).__name__}")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name}: expected integer labels (int64), got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"{name}: expected shape (N,), got {tuple(y.shape)}")
    if y.shape[0] == 0:
        raise ValueError(f"{name}: empty batch (N = 0); expected at least one label")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels (one per image), got {y.shape[0]}")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"{name}: labels must lie in [0, {num_classes - 1}], got min {int(y.min())} "
                         f"and max {int(y.max())}")
    return y.long()


def check_eps(eps, name: str = "eps", upper: float | None = 1.0) -> float:
    """Check an attack budget: a finite real number >= 0 (and <= upper when given)."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{name}: expected a real number >= 0, got {type(eps).__name__}")
    eps = float(eps)
    if not math.isfinite(eps):
        raise ValueError(f"{name}: expected a finite number >= 0, got {eps}")
    if eps < 0:
        raise ValueError(f"{name}: must be >= 0, got {eps}")
    if upper is not None and eps > upper:
        raise ValueError(f"{name}: must be <= {upper} for images in [0, 1], got {eps}")
    return eps


def check_positive_int(v, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v}")
    return int(v)


def check_positive_float(v, name: str, allow_zero: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a positive number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a finite number {'>=' if allow_zero else '>'} 0, got {v}")
    return v


def check_module(m, name: str) -> torch.nn.Module:
    if not isinstance(m, torch.nn.Module):
        raise TypeError(f"{name}: expected a torch.nn.Module, got {type(m).__name__}")
    return m
