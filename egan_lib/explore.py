"""Small measurements the chapters show: data statistics, sample quality, reconstructions, timing.

Each function is batched and returns plain numbers or tensors; the notebooks only plot them.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ._validate import check_images, check_labels, check_module, check_positive_int
from .defenses.egan import EGAN, reconstruct
from .eval.stats import mean_ci
from .eval.timing import time_per_image
from .torch_utils import model_device as _dev

__all__ = ["class_counts", "examples_per_class", "pixel_stats", "class_probabilities", "sample_quality",
           "nearest_neighbour_distance", "interpolate", "reconstruct", "squared_error", "mean_ci",
           "compare_precision", "precision_report", "repository_file", "budget_rows", "budget_markdown", "load_json"]


def class_counts(labels: torch.Tensor, num_classes: int = 10) -> list[int]:
    """How many examples of each class 0..num_classes-1."""
    labels = check_labels(labels, num_classes=num_classes)
    return torch.bincount(labels, minlength=num_classes).tolist()


def examples_per_class(labels: torch.Tensor, k: int, seed: int = 0, num_classes: int = 10) -> torch.Tensor:
    """(num_classes, k) indices: k seeded random examples of each class (for per-class grids)."""
    labels = check_labels(labels, num_classes=num_classes)
    k = check_positive_int(k, "k")
    g = torch.Generator().manual_seed(seed)
    rows = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < k:
            raise ValueError(f"class {c} has {len(idx)} examples, fewer than k={k}")
        rows.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.stack(rows)


def pixel_stats(images_u8: torch.Tensor) -> dict:
    """Pixel statistics of uint8 images: mean/std in [0,1], share of exact 0 and of exact 255, ink per image."""
    if not isinstance(images_u8, torch.Tensor) or images_u8.dtype != torch.uint8 or images_u8.dim() not in (3, 4):
        raise TypeError("images_u8: expected a uint8 tensor of shape (N, 28, 28) or (N, 1, 28, 28)")
    if images_u8.shape[0] == 0:
        raise ValueError("images_u8: empty batch (N = 0)")
    x = images_u8.float() / 255.0
    return {"mean": float(x.mean()), "std": float(x.std()),
            "share_zero": float((images_u8 == 0).float().mean()),
            "share_255": float((images_u8 == 255).float().mean()),
            "mean_ink_per_image": float(x.flatten(1).sum(1).mean())}


@torch.inference_mode()
def class_probabilities(classifier: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Softmax probabilities (N, 10) of a classifier that outputs log-probabilities or logits."""
    check_module(classifier, "classifier")
    x = check_images(x)
    dev = _dev(classifier)
    was = classifier.training
    classifier.eval()
    out = torch.cat([F.softmax(classifier(x[i:i + batch_size].to(dev)).float(), 1).cpu()
                     for i in range(0, len(x), batch_size)])
    classifier.train(was)
    return out


def sample_quality(classifier: torch.nn.Module, samples: torch.Tensor) -> dict:
    """How the classifier sees generated digits: the share of each predicted class and the mean
    confidence (max probability). A good G covers all ten classes about equally (~10% each) and
    yields confident predictions, close to what real test digits give."""
    p = class_probabilities(classifier, samples)
    pred = p.argmax(1)
    hist = torch.bincount(pred, minlength=10).float() / len(pred)
    return {"class_share": [round(float(v), 4) for v in hist], "mean_confidence": float(p.max(1).values.mean()),
            "n": int(len(pred))}


@torch.inference_mode()
def nearest_neighbour_distance(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """L2 distance of each query image to its nearest reference image (a memorisation check)."""
    q = check_images(queries, "queries").flatten(1)
    r = check_images(reference, "reference").flatten(1)
    out = [torch.cdist(q[i:i + chunk], r).min(1).values for i in range(0, len(q), chunk)]
    return torch.cat(out)


@torch.inference_mode()
def interpolate(generator: torch.nn.Module, z0: torch.Tensor, z1: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """G along the straight line from z0 to z1 (rows = pairs, columns = steps): (P*steps, 1, 28, 28)."""
    check_module(generator, "generator")
    steps = check_positive_int(steps, "steps", minimum=2)
    if z0.shape != z1.shape or z0.dim() != 2:
        raise ValueError(f"z0, z1: expected two (P, L) tensors of the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    t = torch.linspace(0, 1, steps)[None, :, None]
    z = (1 - t) * z0[:, None, :] + t * z1[:, None, :]
    dev = _dev(generator)
    generator.eval()
    return generator(z.reshape(-1, z0.shape[1]).to(dev)).float().cpu()


def squared_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-image ||x - x_hat||^2 (the paper's eq. 4 before the mean), shape (N,)."""
    x = check_images(x, "x"); x_hat = check_images(x_hat, "x_hat")
    if x.shape != x_hat.shape:
        raise ValueError(f"x, x_hat: shapes differ ({tuple(x.shape)} vs {tuple(x_hat.shape)})")
    return (x - x_hat).flatten(1).pow(2).sum(1)


def compare_precision(encoder: torch.nn.Module, generator: torch.nn.Module, x: torch.Tensor, repeats: int = 3) -> dict:
    """EGAN's reconstruction error and speed with the encoder in fp32 and under bf16 autocast.

    Returns ``{"fp32": {...}, "bf16": {...}, "paired": {...}}``: per precision the mean squared
    error ||x - G(E(x))||^2 with its 95% half-width, n and milliseconds per image (median of
    ``repeats`` timed calls after a warm-up); ``paired`` holds the per-image difference bf16 - fp32
    (mean, 95% half-width: the accuracy cost of bf16, tighter than comparing the two means), the
    speed-up fp32 time / bf16 time (above 1: bf16 is faster), and the CPU's vector capability as
    torch reports it (e.g. "AVX2": bf16 is emulated; "AVX512" or "AMX": it can be native) or the
    device type on an accelerator.
    """
    check_module(encoder, "encoder"); check_module(generator, "generator")
    x = check_images(x)
    if len(x) < 2:
        raise ValueError(f"x: need at least 2 images for an interval, got {len(x)}")
    repeats = check_positive_int(repeats, "repeats")
    dev = _dev(encoder)
    out, errs = {}, {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        errs[name] = squared_error(x, reconstruct(encoder, generator, x, bf16=bf16))
        err, half, n = mean_ci(errs[name])
        sec = time_per_image(EGAN(encoder, generator, bf16=bf16), x, repeats=repeats)["seconds_per_image"]
        out[name] = {"mean_sq_error": err, "ci95_half": half, "n": n, "ms_per_image": 1000 * sec}
    diff, diff_half, n = mean_ci(errs["bf16"] - errs["fp32"])
    capability = torch.backends.cpu.get_cpu_capability() if dev.type == "cpu" else dev.type
    out["paired"] = {"error_diff": diff, "ci95_half": diff_half, "n": n,
                     "speedup": out["fp32"]["ms_per_image"] / out["bf16"]["ms_per_image"],
                     "capability": capability, "threads": torch.get_num_threads()}
    return out


def precision_report(res: dict) -> str:
    """Four lines of text for a ``compare_precision`` result: each precision's error and speed,
    the paired bf16 - fp32 difference, and the speed factor on this machine."""
    if not isinstance(res, dict) or not {"fp32", "bf16", "paired"} <= set(res):
        raise ValueError("res: expected the dict returned by compare_precision (keys fp32, bf16, paired)")
    lines = [f"{k}: error {res[k]['mean_sq_error']:.2f} +/- {res[k]['ci95_half']:.2f} (n = {res[k]['n']}), "
             f"{res[k]['ms_per_image']:.1f} ms/image" for k in ("fp32", "bf16")]
    d = res["paired"]
    lines.append(f"bf16 - fp32, paired: {d['error_diff']:+.3f} +/- {d['ci95_half']:.3f}")
    lines.append(f"bf16 runs at {d['speedup']:.2f}x the speed of fp32 here ({d['capability']}, {d['threads']} threads)")
    return "\n".join(lines)


def repository_file(relpath: str, *, start=None) -> Path | None:
    """A file of the book's repository (e.g. ``benchmarks/results/dncnn_budget_cpu.json``), looked for in the
    folder above the installed package, then in ``start`` (default: the working directory) and its
    parents; None when it is not there (Colab installs the package only, without the repository)."""
    if not isinstance(relpath, str) or not relpath or Path(relpath).is_absolute():
        raise ValueError(f"relpath: expected a path relative to the repository root, got {relpath!r}")
    here = Path.cwd() if start is None else Path(start)
    for root in (Path(__file__).resolve().parent.parent, here.resolve(), *here.resolve().parents):
        if (root / relpath).is_file():
            return root / relpath
    return None


def budget_rows(obj: dict) -> list[dict]:
    """The rows of a ``benchmarks/dncnn_budget.py`` results file as flat dicts: net, epochs, steps,
    train_seconds, n and, per eps key ("0.1"), correct, acc and ci95 (Wilson 95%)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("rows"), list) or not obj["rows"]:
        raise ValueError("obj: expected a dncnn_budget results dict with a non-empty 'rows' list")
    rows = []
    for r in obj["rows"]:
        missing = [k for k in ("net", "epochs", "steps", "train_seconds", "n", "accuracy") if k not in r]
        if missing:
            raise ValueError(f"obj['rows']: a row lacks {missing}")
        rows.append({k: r[k] for k in ("net", "epochs", "steps", "train_seconds", "n")} | {"accuracy": dict(r["accuracy"])})
    return rows


def budget_markdown(obj: dict) -> str:
    """A Markdown table of a ``dncnn_budget.py`` results file: one row per trained net, the accuracy at each
    eps as a percentage with its 95% Wilson interval, n, training steps and seconds."""
    rows = budget_rows(obj)
    eps = sorted({e for r in rows for e in r["accuracy"]}, key=float)
    head = "| net (layers x channels) | epochs | steps | training (s) | n | " + \
        " | ".join(f"eps {float(e):.2f}" for e in eps) + " |"
    lines = [head, "|" + "---|" * (5 + len(eps))]
    for r in rows:
        cells = []
        for e in eps:
            a = r["accuracy"].get(e)
            cells.append("-" if a is None else f"{100 * a['acc']:.1f}% [{100 * a['ci95'][0]:.1f}, {100 * a['ci95'][1]:.1f}]")
        lines.append(f"| {r['net']} | {r['epochs']} | {r['steps']} | {r['train_seconds']:.0f} | {r['n']} | " +
                     " | ".join(cells) + " |")
    return "\n".join(lines)


def load_json(path) -> dict:
    """The JSON object in ``path``."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
