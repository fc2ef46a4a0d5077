"""DnCNN under a small training budget: how much do depth x width and the number of steps matter?

    python benchmarks/dncnn_budget.py [--profile cpu] [--threads 2] [--n-test 300]
                                      [--nets 17x64x2 17x32x3] [--eps 0.1 0.3] [--json out.json]

Each ``--nets`` entry is ``LAYERSxCHANNELSxEPOCHS``. Every net is trained exactly as chapter 05 trains
the profile's DnCNN (``egan_lib.defenses.train_dncnn``: the profile's training subset, batch, learning
rate, FGSM/Gaussian training pairs against the profile's classifier C), only with its own size and
number of epochs, and then evaluated as in chapter 06: oblivious FGSM against C on the profile's fixed
test subset, the attacked images purified by the DnCNN and classified by C. Printed per net: training
steps, training wall time (s), and accuracy with its 95% Wilson interval at each eps.

The classifier is loaded from the workspace (``--artifacts``) or the shipped weights; if neither has
it, it is trained first (minutes). Nothing is written except the optional ``--json``.
Why it exists: the ``cpu`` profile trains the published 17 x 64 DnCNN for a few hundred steps only, and
chapter 05 points here for what more steps, or a narrower net in the same time, give.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from egan_lib import attacks, defenses as dfn, workflow  # noqa: E402
from egan_lib.config import describe_runtime  # noqa: E402
from egan_lib.eval.stats import wilson_interval  # noqa: E402

_NET = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def parse_net(spec: str) -> tuple[int, int, int]:
    """'17x64x2' -> (17, 64, 2): layers, channels, epochs."""
    m = _NET.match(spec.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"--nets: expected LAYERSxCHANNELSxEPOCHS such as 17x64x2, got {spec!r}")
    layers, channels, epochs = (int(v) for v in m.groups())
    if layers < 3 or channels < 1 or epochs < 1:
        raise argparse.ArgumentTypeError(f"--nets: need layers >= 3, channels >= 1, epochs >= 1, got {spec!r}")
    return layers, channels, epochs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--n-test", type=int, default=None, help="test images (default: the profile's n_test)")
    ap.add_argument("--nets", nargs="+", type=parse_net, default=[(17, 64, 2), (17, 32, 3)])
    ap.add_argument("--eps", nargs="+", type=float, default=[0.1, 0.3])
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    a = ap.parse_args(argv)
    for e in a.eps:
        if not 0.0 <= e <= 1.0:
            ap.error(f"--eps: expected values in [0, 1], got {e}")

    ws = workflow.setup(a.profile, seed=a.seed, device=a.device, data_dir=a.data_dir, artifacts_dir=a.artifacts,
                        progress=False, threads=a.threads)
    p = ws.profile
    C, _ = ws.classifier()
    x_train, y_train = ws.train_subset(p.dncnn_train_size)
    x_test, y_test = ws.test_set(a.n_test)
    n = int(x_test.shape[0])
    adv = {e: attacks.fgsm(C, x_test, y_test, e, device=ws.device) for e in a.eps}
    rt = describe_runtime(ws.device)
    print(f"# {rt['device']} ({rt['device_name']}), {rt['torch_threads']} threads, torch {rt['torch']}; "
          f"profile {p.name}; {x_train.shape[0]} training digits, batch {p.dncnn_batch}, lr {p.dncnn_lr}; "
          f"oblivious FGSM on n={n} test digits")
    rows = []
    for layers, channels, epochs in a.nets:
        torch.manual_seed(a.seed)
        net = dfn.DnCNN(layers, channels)
        t0 = time.perf_counter()
        hist = dfn.train_dncnn(net, x_train, labels=y_train, classifier=C, eps_max=p.dncnn_eps_max,
                               sigma_max=p.dncnn_sigma_max, epochs=epochs, batch_size=p.dncnn_batch, lr=p.dncnn_lr,
                               seed=a.seed, device=ws.device, progress=False)
        train_s = time.perf_counter() - t0
        defense = dfn.DnCNNDefense(net, device=ws.device)
        row = {"net": f"{layers}x{channels}", "epochs": epochs, "steps": hist["step"][-1],
               "train_seconds": round(train_s, 1), "n": n, "accuracy": {}}
        for e in a.eps:
            k = int(round(attacks.accuracy(C, defense.purify(adv[e]), y_test, device=ws.device) * n))
            lo, hi = wilson_interval(k, n)
            row["accuracy"][str(e)] = {"correct": k, "acc": k / n, "ci95": [lo, hi]}
        rows.append(row)
        accs = "  ".join(f"eps {e}: {100 * v['acc']:.1f}% [{100 * v['ci95'][0]:.1f}, {100 * v['ci95'][1]:.1f}]"
                         for e, v in row["accuracy"].items())
        print(f"DnCNN {row['net']:>6} x {epochs} epochs = {row['steps']:4d} steps, {train_s:7.1f} s training;  {accs}",
              flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"profile": p.name, "runtime": rt, "rows": rows},
                                           indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
