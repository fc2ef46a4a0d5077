"""The input contract of egan_lib: every public function checks its arguments here, in one place,
with one wording ("<name>: expected <what>, got <what came>").

Callers use the *return value* of a check (``x = check_images(x)``, ``seed = check_seed(seed)``):
some checks convert what they accept into the one form the library computes with.

Images (``check_images``)
    A ``torch.Tensor`` of shape (N, 1, 28, 28) with N >= 1, finite, every pixel in [0, 1].
    Any floating dtype is accepted (float32, float64 as numpy gives, float16, bfloat16, ...):
    it is returned as float32 (no copy when it already is float32; the result need not be
    contiguous, and it stays on its device). Computing in float32 is part of the contract: a
    float16 input would otherwise make a gradient underflow (a weaker FGSM, silently).
    Integer and bool images (uint8 0..255, int64, ...) are refused with a TypeError that points to
    ``egan_lib.data.to_float``: a library that divides by 255 behind your back, or not, is a trap.
    Complex tensors, numpy arrays and lists are refused with a TypeError. NaN / inf, values
    outside [0, 1], a wrong shape and an empty batch raise ValueError. The range and finiteness
    are checked on the values as given, before the conversion.

Labels (``check_labels``)
    A 1-D integer tensor (int64, int32, int16, int8 or uint8; returned as int64), one label per
    image when ``n`` is given, every label in [0, num_classes). Float or bool labels: TypeError.

Numbers
    * ``check_eps``: an attack budget, a finite real >= 0 and <= 1 (images live in [0, 1]);
      bools, strings and tensors are refused (TypeError). Returned as float.
    * ``check_eps_list(values, *, sorted_unique=True)``: a non-empty list / tuple / 1-D array of
      eps, each one as ``check_eps``; by default strictly increasing (duplicates and an unsorted
      list are refused, never reordered for you). Returned as a list of floats.
    * ``check_seed``: a non-negative integer below 2**64 (what torch accepts); bools, floats and
      strings are refused. Every bad seed raises ValueError (the library always did).
    * ``check_positive_int(v, name, minimum=1)``: sizes, epochs, batches, steps (bools refused).
    * ``check_positive_float(v, name, allow_zero=False)``: learning rates, seconds, scales.
    * ``check_fraction(v, name)``: a finite number in [0, 1] (momenta, decay points, noise levels).
    Wrong types raise TypeError, wrong values ValueError, except seeds (always ValueError).

Objects
    * ``check_module``: a ``torch.nn.Module``; ``check_callable``: anything callable (a module or
      a function). Otherwise TypeError.
    * A device is checked by ``egan_lib.config.device`` ("auto", "cpu", "cuda", "cuda:1", "mps"; one
      that is not available on this machine is a ValueError).
    * A profile is checked when it is made (``egan_lib.config.Profile``): every field, with a
      ValueError naming the field (``get_profile`` and ``Profile.replace`` check it too).

The checks are cheap next to what they guard (one pass over the images for finiteness and range).
"""
from __future__ import annotations

import math
import numbers

import torch

IMAGE_SHAPE = (1, 28, 28)
LABEL_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
SEED_LIMIT = 2 ** 64          # torch.manual_seed accepts 0 .. 2**64 - 1

__all__ = ["IMAGE_SHAPE", "check_images", "check_labels", "check_eps", "check_eps_list", "check_seed",
           "check_positive_int", "check_positive_float", "check_fraction", "check_module", "check_callable"]


def check_images(x, name: str = "x") -> torch.Tensor:
    """Check a batch of images (shape (N, 1, 28, 28), N >= 1, finite, in [0, 1], a floating dtype) and
    return it as float32 (the same tensor when it already is float32). Use the result: ``x = check_images(x)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of images with shape (N, 1, 28, 28), "
                        f"got {type(x).__name__}")
    if not x.is_floating_point():
        if x.is_complex():
            raise TypeError(f"{name}: expected a real floating-point tensor with values in [0, 1], got dtype {x.dtype}")
        raise TypeError(f"{name}: expected a floating-point tensor with values in [0, 1], got dtype {x.dtype} "
                        "(convert uint8 images with egan_lib.data.to_float; integer and bool images are "
                        "never rescaled implicitly)")
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"{name}: expected shape (N, 1, 28, 28), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty batch (N = 0); expected at least one image")
    v = x.detach()
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name}: contains NaN or inf; expected finite pixel values in [0, 1]")
    lo, hi = float(v.min()), float(v.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: pixel values must lie in [0, 1], got min {lo:.4g} and max {hi:.4g}")
    return x if x.dtype == torch.float32 else x.to(torch.float32)


def check_labels(y, n: int | None = None, name: str = "y", num_classes: int = 10) -> torch.Tensor:
    """Check integer class labels of shape (N,) in [0, num_classes) (``n``: the number expected); returns int64."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of int64 labels, got {type(y).__name__}")
    if y.dtype not in LABEL_DTYPES:
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


def _as_sequence(values, name: str, what: str) -> list:
    """A list / tuple / 1-D array / 1-D tensor as a Python list; anything else is refused."""
    if values is None or isinstance(values, (numbers.Number, str, bytes)):
        raise ValueError(f"{name}: expected a non-empty list of {what}, got {values!r}")
    if isinstance(values, torch.Tensor) or type(values).__module__ == "numpy":
        if getattr(values, "ndim", None) != 1:
            raise ValueError(f"{name}: expected a non-empty list of {what}, got an array of shape "
                             f"{tuple(values.shape) if hasattr(values, 'shape') else '?'}")
        values = values.tolist()
    if not isinstance(values, (list, tuple, range)):
        raise ValueError(f"{name}: expected a non-empty list of {what}, got {values!r}"[:300])
    if len(values) == 0:
        raise ValueError(f"{name}: empty list; expected a non-empty list of {what}")
    return list(values)


def check_eps_list(values, *, sorted_unique: bool = True, unique: bool | None = None, name: str = "eps_values",
                   upper: float | None = 1.0) -> list[float]:
    """Check a list of attack budgets and return it as a list of floats.

    Refused: anything but a list / tuple / 1-D array (a single number, a string, None, a set: ValueError),
    an empty list (ValueError), an element that fails ``check_eps`` (TypeError / ValueError naming it).
    ``sorted_unique=True`` (default): the list must be strictly increasing: duplicates and an unsorted
    list are refused (never silently reordered). ``sorted_unique=False``: any order; duplicates are then
    still refused unless ``unique=False``.
    """
    vals = _as_sequence(values, name, "eps")
    eps = [check_eps(e, f"{name}[{i}]", upper=upper) for i, e in enumerate(vals)]
    unique = True if unique is None else unique
    if unique:
        seen: dict[float, int] = {}
        for i, e in enumerate(eps):
            key = round(e, 9)
            if key in seen:
                raise ValueError(f"{name}: duplicate eps {e} (positions {seen[key]} and {i}) in {eps}")
            seen[key] = i
    if sorted_unique:
        for i in range(1, len(eps)):
            if eps[i] < eps[i - 1]:
                raise ValueError(f"{name}: expected eps in increasing order, got {eps} "
                                 f"({eps[i - 1]} comes before {eps[i]}); pass sorted(...)")
    return eps


def check_seed(seed, name: str = "seed") -> int:
    """A seed: a non-negative integer below 2**64 (bools refused). Always ValueError when bad."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {seed!r}")
    if seed >= SEED_LIMIT:
        raise ValueError(f"{name}: expected a non-negative integer below 2**64, got {seed!r}")
    return int(seed)


def check_positive_int(v, name: str, minimum: int = 1) -> int:
    """An integer >= minimum (sizes, epochs, batches, steps); bools refused."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v}")
    return int(v)


def check_positive_float(v, name: str, allow_zero: bool = False) -> float:
    """A finite real number > 0 (>= 0 with ``allow_zero``); bools refused."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a positive number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a finite number {'>=' if allow_zero else '>'} 0, got {v}")
    return v


def check_fraction(v, name: str) -> float:
    """A finite real number in [0, 1] (momentum, a decay point, a noise level); bools refused."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1], got {type(v).__name__}")
    v = float(v)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{name}: expected a number in [0, 1], got {v}")
    return v


def check_module(m, name: str) -> torch.nn.Module:
    """A ``torch.nn.Module``."""
    if not isinstance(m, torch.nn.Module):
        raise TypeError(f"{name}: expected a torch.nn.Module, got {type(m).__name__}")
    return m


def check_callable(fn, name: str, what: str = "a callable (an nn.Module or a function x -> outputs)"):
    """Anything callable (a module, a function, an object with ``__call__``)."""
    if not callable(fn):
        raise TypeError(f"{name}: expected {what}, got {type(fn).__name__}")
    return fn
