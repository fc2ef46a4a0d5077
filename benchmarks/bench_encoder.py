"""Training speed of the paper's encoder E on this machine: image-steps per second for each variant.

A training step is what ``egan_lib.training.train_encoder`` does per batch: E forward (optionally under
bf16 autocast, channels_last), G frozen, the squared error, backward, Adam. Variants: fp32, bf16
autocast, bf16 + channels_last, at a few batch sizes, and ``torch.compile`` when asked. bf16 is only
fast where the CPU computes it natively (AVX512-BF16 or AMX: ``egan_lib.config.native_bf16``);
elsewhere it is emulated and many times slower. Every line names the machine.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_encoder.py --threads 2 [--compile] [--json out.json]
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
from egan_lib.config import describe_runtime, get_profile, native_bf16  # noqa: E402
from egan_lib.models import build_encoder, build_generator  # noqa: E402
from egan_lib.training import reconstruction_loss  # noqa: E402


def step_seconds(E, G, opt, x, *, bf16: bool, channels_last: bool, repeats: int) -> float:
    """Median seconds of one training step on the batch x (one untimed warm-up step first)."""
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        xb = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = E(xb)
        loss = reconstruction_loss(x, G(z.float()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(E) (slow to start)")
    ap.add_argument("--json", default=None, help="write the measurements here")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    p = get_profile(a.profile)
    rt = describe_runtime("cpu")
    print(f"machine: {rt['device_name']}, {rt['torch_threads']} threads, torch {rt['torch']}; "
          f"native bf16: {native_bf16()}")
    G = build_generator(p).eval()
    for q in G.parameters():
        q.requires_grad_(False)
    variants = [("fp32", False, False), ("bf16", True, False), ("bf16+channels_last", True, True)]
    rows = []
    for name, bf16, cl in variants:
        for bs in a.batches:
            torch.manual_seed(0)
            E = build_encoder(p).train()
            if cl:
                E = E.to(memory_format=torch.channels_last)
            modes = [("eager", E)]
            if a.compile:
                modes.append(("compile", torch.compile(E)))
            for mode, net in modes:
                opt = torch.optim.Adam(E.parameters(), lr=1e-3)
                x = torch.rand(bs, 1, 28, 28)
                s = step_seconds(net, G, opt, x, bf16=bf16, channels_last=cl, repeats=a.repeats)
                rows.append({"variant": name, "batch": bs, "mode": mode, "seconds_per_step": s,
                             "image_steps_per_second": bs / s, "ms_per_image_step": 1000 * s / bs})
                print(f"{name:20s} batch {bs:4d} {mode:8s}: {bs / s:7.1f} image-steps/s "
                      f"({1000 * s / bs:.2f} ms per image-step)", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"runtime": rt, "native_bf16": native_bf16(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
