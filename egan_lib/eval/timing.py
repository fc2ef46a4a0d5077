"""Seconds per image of a purifier: warm-up first, then the median of repeats on the same batch, the
device synchronised around the clock (CUDA), with the device, threads and batch size reported."""
from __future__ import annotations

import numbers
import statistics
import time

import torch

from .._validate import check_images, check_positive_int
from ..config import synchronize


def time_per_image(defense, x: torch.Tensor, *, repeats: int = 3, warmup: int = 1) -> dict:
    """Seconds per image of ``defense.purify`` (or any callable) on the batch x: ``warmup`` untimed calls,
    then the median of ``repeats`` timed calls, each bracketed by a device synchronisation."""
    x = check_images(x, "x (timing batch)")
    repeats = check_positive_int(repeats, "timing_repeats")
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or warmup < 0:
        raise ValueError(f"timing_warmup: expected an integer >= 0, got {warmup!r}")
    has_purify = callable(getattr(defense, "purify", None))
    if not has_purify and not callable(defense):
        raise TypeError(f"defense: expected an object with .purify(x) or a callable, got {type(defense).__name__}")
    dev = torch.device(str(getattr(defense, "device", "cpu")))
    b = x.shape[0]

    def call():
        return defense.purify(x, batch_size=b) if has_purify else defense(x)

    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        synchronize(dev)
        t0 = time.perf_counter()
        call()
        synchronize(dev)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"seconds_per_image": max(med / b, 1e-12), "times": times, "batch_size": b, "device": str(dev),
            "threads": torch.get_num_threads(), "repeats": repeats, "warmup": int(warmup)}
