"""Chapter 08's comparison: the paper's EGAN, the robust variants (EGAN-R, label-free; EGAN-RC, with the
classifier's loss), Defense-GAN under BPDA + EOT (chapter 07's pieces) and the published robust-training
references on MNIST, each with its threat model, its source, and for ours the cost of training and of one
purification. Every number comes from stored campaign pieces (``egan_lib.eval.campaign``) or is measured
here; the verdict is computed from them.

Two of our methods are compared on the *same* images, so the test between them is paired: an exact
McNemar test on the images where one is right and the other wrong (``mcnemar_exact``).
"""
from __future__ import annotations

import math
import time

import torch

from .._validate import check_images, check_labels, check_positive_int
from .campaign_report import worst_case
from .stats import wilson_interval

THREAT_DGAN = "BPDA + EOT through a shorter search (an upper bound)"


def mcnemar_exact(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int, float]:
    """(images only ``a`` gets right, images only ``b`` gets right, two-sided exact p-value) for two
    boolean per-image outcomes on the same images."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape or a.dim() != 1:
        raise ValueError("mcnemar_exact: expected two 1-D boolean tensors of the same length (the same images)")
    a, b = a.bool(), b.bool()
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    m = only_a + only_b
    if m == 0:
        return only_a, only_b, 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m
    return only_a, only_b, min(1.0, 2 * tail)


def clean_accuracy(classifier, defenses: dict, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256) -> dict:
    """{name: {"correct", "accuracy", "ci95", "n", "seconds_per_image"}}: C(purify(x)) on clean images, with
    the measured cost of one purification (the whole batch timed, divided by n)."""
    from ..attacks.base import predict, purify_batched
    x = check_images(x)
    y = check_labels(y, n=x.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    if not isinstance(defenses, dict) or not defenses:
        raise ValueError("defenses: expected a non-empty {name: Defense} dict")
    out = {}
    for name, d in defenses.items():
        t0 = time.perf_counter()
        xp = purify_batched(d, x, batch_size)
        dt = time.perf_counter() - t0
        correct = predict(classifier, xp, batch_size=batch_size).cpu() == y.cpu()
        k, n = int(correct.sum()), len(y)
        out[name] = {"correct": correct, "accuracy": k / n, "ci95": wilson_interval(k, n), "n": n,
                     "seconds_per_image": dt / n}
    return out


def clean_from_oblivious(oblivious: dict | None, name: str) -> dict | None:
    """Chapter 06's clean accuracy (eps 0) of ``name`` with its interval, n and measured seconds per
    purification, in ``clean_accuracy``'s form (without per-image outcomes), or None when it is not stored."""
    try:
        m = oblivious["methods"][name]
        return {"accuracy": m["accuracy"]["0.00"], "ci95": tuple(m["ci95"]["0.00"]), "n": m["n"],
                "seconds_per_image": m["seconds_per_image"]}
    except (KeyError, TypeError):
        return None


def comparison(res: dict, clean: dict, *, defenses, train_seconds: dict, references=(), eps_values=(0.1, 0.2, 0.3),
               threat: dict | None = None) -> list:
    """One row per method: ours (each defense of ``defenses`` with stored pieces in ``res``: its clean
    accuracy from ``clean``, its per-image worst case at ``eps_values`` with 95% Wilson intervals, n, its
    training minutes from ``train_seconds`` and one purification's cost), then each published reference at
    its eps, with its attack and source."""
    wcs = worst_case(res)
    threat = {"Defense-GAN": THREAT_DGAN + " over " + ", ".join(wcs["Defense-GAN"]["per_attack"])
              if "Defense-GAN" in wcs else THREAT_DGAN, **(threat or {})}
    rows = []
    for name in defenses:
        if name not in wcs:
            continue
        w = wcs[name]
        cells, correct = {}, {}
        for e in eps_values:
            key = next((k for k in w["correct"] if abs(k - e) < 1e-9), None)
            if key is not None:
                correct[e] = w["correct"][key]
                k = int(correct[e].sum())
                cells[e] = (k / w["n"], *wilson_interval(k, w["n"]))
        c = clean.get(name)
        ran = "white-box L-inf, worst case per image over " + ", ".join(w["per_attack"])
        rows.append({"method": name, "ours": True, "threat": threat.get(name, ran), "worst": cells,
                     "n": w["n"], "clean": None if c is None else (c["accuracy"], *c["ci95"]),
                     "train_minutes": None if train_seconds.get(name) is None else train_seconds[name] / 60,
                     "purify_ms": None if c is None else 1000 * c["seconds_per_image"], "source": "this book",
                     "correct": correct})
    for r in references:
        rows.append({"method": r.label, "ours": False, "threat": r.attack, "worst": {r.eps: (r.accuracy, None, None)},
                     "n": None, "clean": None, "train_minutes": None, "purify_ms": None, "source": r.source,
                     "correct": {}})
    return rows


def _pct(cell) -> str:
    if cell is None:
        return "-"
    acc, lo, hi = cell
    return f"{100 * acc:.1f}" if lo is None else f"{100 * acc:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def markdown(rows: list, eps_values=(0.1, 0.2, 0.3)) -> str:
    head = ("| method | threat model | clean (%) | " + " | ".join(f"eps {e:g} (%)" for e in eps_values)
            + " | n | training (min) | one purification (ms/image) | source |")
    lines = [head, "|" + "---|" * (7 + len(eps_values))]
    for r in rows:
        cells = " | ".join(_pct(r["worst"].get(e)) for e in eps_values)
        lines.append(f"| {r['method']} | {r['threat']} | {_pct(r['clean'])} | {cells} | {r['n'] or '-'} | "
                     + (f"{r['train_minutes']:.0f}" if r["train_minutes"] is not None else "-") + " | "
                     + (f"{r['purify_ms']:.1f}" if r["purify_ms"] is not None else "-") + f" | {r['source']} |")
    return "\n".join(lines)


def verdict(rows: list, *, base: str = "EGAN", variants=("EGAN-R", "EGAN-RC"), eps: float = 0.3,
            alpha: float = 0.05) -> str:
    """The chapter's verdict, computed: per variant and eps, its worst case against ``base``'s on the same
    images (McNemar exact, ``alpha``), and at ``eps`` against the best published reference."""
    by = {r["method"]: r for r in rows}
    if base not in by:
        return f"No stored pieces for {base}: no verdict yet."
    refs = [r for r in rows if not r["ours"] and eps in r["worst"]]
    best = max(refs, key=lambda r: r["worst"][eps][0]) if refs else None
    out = []
    for v in variants:
        if v not in by:
            out.append(f"- **{v}**: no stored pieces yet.")
            continue
        parts = []
        for e in sorted(by[v]["worst"]):
            if e not in by[base]["worst"] or e not in by[v]["correct"] or e not in by[base]["correct"]:
                continue
            only_v, only_b, pval = mcnemar_exact(by[v]["correct"][e], by[base]["correct"][e])
            diff = 100 * (by[v]["worst"][e][0] - by[base]["worst"][e][0])
            sig = pval < alpha
            parts.append(f"eps {e:g}: {_pct(by[v]['worst'][e])}% against {_pct(by[base]['worst'][e])}% "
                         f"({diff:+.1f} points; {only_v} images only {v} keeps, {only_b} only {base}; McNemar "
                         f"p = {pval:.2g}, {'a difference beyond the noise' if sig else 'within the noise'})")
        clean = by[v]["clean"]
        line = f"- **{v}** (n = {by[v]['n']}" + (f", clean {100 * clean[0]:.1f}%" if clean else "") + "): " \
            + ("; ".join(parts) or "no eps in common with " + base) + "."
        if best is not None and eps in by[v]["worst"]:
            gap = 100 * (best["worst"][eps][0] - by[v]["worst"][eps][2])
            line += (f" At eps {eps:g} its upper interval bound lies {gap:.1f} points below {best['method']} "
                     f"({100 * best['worst'][eps][0]:.1f}%)." if gap > 0 else
                     f" At eps {eps:g} its interval reaches {best['method']} ({100 * best['worst'][eps][0]:.1f}%): "
                     "check that the attacks converged before believing it.")
        out.append(line)
    return "\n".join(out)


def plot_training(histories: dict):
    """The outer loss against the training step, one line per robust variant ({name: history with "step"
    and "loss"}), on a log scale."""
    from matplotlib.figure import Figure
    if not isinstance(histories, dict) or not histories:
        raise ValueError("histories: expected a non-empty {variant: training history} dict")
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for name, h in histories.items():
        ax.plot(h["step"], h["loss"], "o-", ms=3, label=name)
    ax.set(xlabel="training step", ylabel="outer loss (squared error per image)", yscale="log",
           title="Robust fine-tuning of E: reconstruction of the clean image from the perturbed one")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
