"""Milliseconds per image of one white-box PGD step through EGAN's C(G(E(x))): the deployed fp32 pipeline
against the attacker's fast arithmetic (BatchNorm folded into the convolutions, channels_last, in fp32 --
the ``:fold`` specs -- and under bf16 autocast -- ``:bf16``; ``egan_lib.attacks.fast``), for a few batch sizes.

    python benchmarks/attack_step.py [--profile cpu] [--threads 2] [--batches 64 250] [--repeats 3]

The networks have the profile's architectures and random weights (a step costs the same whatever the
weights); nothing is trained or loaded. A step is a forward and a backward pass of the cross-entropy to
the input. Printed: the median over ``--repeats`` timed steps after one warm-up, the device, threads and
whether the CPU has native bf16 (on AVX2-only CPUs bf16 is emulated and the bf16 path is slower).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from egan_lib.attacks.base import per_image_loss  # noqa: E402
from egan_lib.attacks.bpda import through  # noqa: E402
from egan_lib.config import describe_runtime, get_profile  # noqa: E402
from egan_lib.defenses import EGAN  # noqa: E402
from egan_lib.models import Classifier, build_encoder, build_generator  # noqa: E402


def step_ms(fn, x: torch.Tensor, y: torch.Tensor, repeats: int) -> float:
    times = []
    for r in range(repeats + 1):
        xb = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        loss = per_image_loss(fn(xb), y, "ce").sum()
        torch.autograd.grad(loss, xb)
        if r:                                  # the first call is the warm-up
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / x.shape[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 250])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    a = ap.parse_args(argv)
    if a.threads < 1 or a.repeats < 1 or any(b < 1 for b in a.batches):
        ap.error("--threads, --repeats and every --batches value must be >= 1")
    torch.set_num_threads(a.threads)
    p = get_profile(a.profile)
    torch.manual_seed(0)
    d = EGAN(build_encoder(p).eval(), build_generator(p).eval())
    C = Classifier().eval()
    rt = describe_runtime()
    rows = []
    for b in a.batches:
        x, y = torch.rand(b, 1, 28, 28), torch.randint(0, 10, (b,))
        for label, fn in (("deployed fp32", through(d, C)), ("attacker: folded, channels_last, fp32", through(d, C, fold=True)),
                          ("attacker: folded, channels_last, bf16", through(d, C, bf16=True))):
            ms = step_ms(fn, x, y, a.repeats)
            rows.append({"batch": b, "pipeline": label, "ms_per_image": ms})
            print(f"batch {b:4d}  {label:40s} {ms:8.2f} ms per image per PGD step")
    print(f"machine: {rt['device_name']}, {rt['torch_threads']} threads, profile {p.name}")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "runtime": rt}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
