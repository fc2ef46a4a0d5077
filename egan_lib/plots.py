"""The book's figures (matplotlib): the paper's Figs. 2-5 and the small helpers chapters 01-04 use.

Every function returns a ``matplotlib.figure.Figure`` and never calls ``plt.show()``. Figures made
here are not registered with pyplot (no duplicate display, no figure leak in long notebooks): make the
figure the last expression of a cell, or ``display(fig)``, or ``fig.savefig(path)``. Pass ``ax=`` to
draw into an axes of your own (then its figure is returned).

Axes carry units, and every accuracy states the number of images n and the threat model.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["plot_accuracy_vs_eps", "plot_time_vs_accuracy", "plot_examples", "image_grid", "plot_curves",
           "tile_images", "as_results"]

_MARKERS = "os^vD<>pPX*h"


def as_results(results):
    """A ``Results`` from a Results, or from a results JSON object (dict)."""
    from .eval.results import Results
    if isinstance(results, Results):
        return results
    if isinstance(results, list):
        raise ValueError("results: got a list (one entry per threat model); pick one with "
                         "egan_lib.eval.results.select_results(obj, threat_model)")
    if isinstance(results, dict):
        return Results.from_json_dict(results)
    raise TypeError(f"results: expected an egan_lib.eval.results.Results or a results JSON dict, got {type(results).__name__}")


def _new_ax(ax, figsize):
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    if not hasattr(ax, "figure") or not hasattr(ax, "plot"):
        raise TypeError(f"ax: expected a matplotlib Axes, got {type(ax).__name__}")
    return ax.figure, ax


def _methods(res, methods):
    if methods is None:
        return list(res.methods)
    if isinstance(methods, str):
        methods = [methods]
    methods = list(methods)
    unknown = [m for m in methods if m not in res.methods]
    if unknown:
        raise ValueError(f"methods: {unknown} are not in the results; known: {list(res.methods)}")
    if not methods:
        raise ValueError("methods: empty list")
    return methods


def _n_text(res, methods) -> str:
    ns = {res.n[m] for m in methods}
    return f"n = {ns.pop()} test images" if len(ns) == 1 else "n per method in the legend"


def plot_accuracy_vs_eps(results, ax=None, methods=None, *, title: str | None = None, percent: bool = True):
    """Accuracy vs FGSM eps for every method, with 95% Wilson bands (the paper's Fig. 4)."""
    res = as_results(results)
    methods = _methods(res, methods)
    fig, ax = _new_ax(ax, (7.5, 4.5))
    scale = 100.0 if percent else 1.0
    eps = np.asarray(res.eps, dtype=float)
    for i, m in enumerate(methods):
        acc = np.array([res.accuracy[m][e] for e in res.eps]) * scale
        lo = np.array([res.ci95[m][e][0] for e in res.eps]) * scale
        hi = np.array([res.ci95[m][e][1] for e in res.eps]) * scale
        line, = ax.plot(eps, acc, marker=_MARKERS[i % len(_MARKERS)], ms=4, lw=1.5, label=f"{m} (n={res.n[m]})")
        ax.fill_between(eps, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("FGSM budget ε (L∞, pixel values in [0, 1])")
    ax.set_ylabel("accuracy (%)" if percent else "accuracy (fraction)")
    ax.set_ylim(-0.02 * scale, 1.02 * scale)
    ax.set_xlim(eps.min() - 0.01, eps.max() + 0.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best", title="method (images)", title_fontsize="small")
    if title is None:
        title = (f"Accuracy vs ε, {res.attack.upper()}, {res.threat_model} threat model\n"
                 f"({_n_text(res, methods)}; bands: 95% Wilson intervals)")
    ax.set_title(title, fontsize="medium")
    return fig


def plot_time_vs_accuracy(results, eps: float = 0.5, ax=None, methods=None, *, title: str | None = None,
                          percent: bool = True):
    """Seconds per image (log x axis) vs accuracy at one eps, with 95% Wilson error bars (the paper's Fig. 5)."""
    from .eval.results import match_eps as _match_eps
    res = as_results(results)
    methods = _methods(res, methods)
    e = _match_eps(eps, res.eps)
    fig, ax = _new_ax(ax, (7, 4.5))
    scale = 100.0 if percent else 1.0
    for i, m in enumerate(methods):
        t = max(float(res.seconds_per_image[m]), 1e-9)
        a = res.accuracy[m][e] * scale
        lo, hi = (v * scale for v in res.ci95[m][e])
        ax.errorbar([t], [a], yerr=[[max(a - lo, 0)], [max(hi - a, 0)]], fmt=_MARKERS[i % len(_MARKERS)],
                    ms=7, capsize=4, label=f"{m} (n={res.n[m]})")
        ax.annotate(m, (t, a), textcoords="offset points", xytext=(6, 5), fontsize="small")
    ax.set_xscale("log")
    tm = res.timing or {}
    how = ", ".join(str(s) for s in (tm.get("device"),
                                     f"{tm['threads']} threads" if "threads" in tm else None,
                                     f"batch {tm['batch_size']}" if "batch_size" in tm else None) if s)
    ax.set_xlabel("time per image (seconds, log scale" + (f"; {how})" if how else ")"))
    ax.set_ylabel(f"accuracy at ε = {e:.2f} (%)" if percent else f"accuracy at ε = {e:.2f}")
    ax.set_ylim(-0.02 * scale, 1.05 * scale)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="best")
    if title is None:
        title = (f"Accuracy vs time per image, {res.attack.upper()} ε = {e:.2f}, {res.threat_model} threat model\n"
                 f"({_n_text(res, methods)}; bars: 95% Wilson intervals)")
    ax.set_title(title, fontsize="medium")
    return fig


def as_float_images(images, name="images") -> torch.Tensor:
    """Images to draw -> a float32 CPU tensor (N, 1, H, W) in [0, 1].

    (N, 1, H, W) or (N, H, W) tensors or arrays: floating ones (any dtype) are clipped to [0, 1];
    uint8 ones (0..255) are rescaled as everywhere else in the library, by ``egan_lib.data.to_float``
    (divided by 255, not clipped to two grey levels); bool ones are 0 / 1. Other integer dtypes are
    refused (TypeError): 0..255 or 0..1? convert them yourself."""
    from .data import to_float
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor or array of images (N, 1, 28, 28), got {type(images).__name__}")
    t = images.detach().cpu()
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.dim() != 4 or t.shape[1] != 1 or t.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (N, 1, H, W) or (N, H, W) with N >= 1, got {tuple(images.shape)}")
    if t.dtype == torch.uint8:
        return to_float(t) if tuple(t.shape[2:]) == (28, 28) else t.float().div_(255.0)
    if t.dtype == torch.bool:
        return t.float()
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected float images in [0, 1] or uint8 images in 0..255, got dtype {t.dtype}")
    t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    return t.clamp(0.0, 1.0)


def _to_numpy_images(images, name="images") -> np.ndarray:
    """(N, 1, H, W) / (N, H, W) tensor or array (float in [0, 1], or uint8) -> float32 array (N, H, W) in [0, 1]."""
    return as_float_images(images, name)[:, 0].numpy()


def grid_array(t: torch.Tensor, nrow: int, padding: int, pad_value: float) -> np.ndarray:
    """torchvision.utils.make_grid of (N, 1, H, W) as one (H', W') array; one image is padded too
    (make_grid returns a single image as it is)."""
    from torchvision.utils import make_grid
    if t.shape[0] == 1:
        return torch.nn.functional.pad(t[0, 0], (padding,) * 4, value=float(pad_value)).numpy()
    return make_grid(t, nrow=nrow, padding=padding, pad_value=float(pad_value))[0].numpy()


def tile_images(images, nrow: int, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """One (H, W) array of the images in rows of ``nrow``: ``torchvision.utils.make_grid``, one channel.
    uint8 images are rescaled with ``egan_lib.data.to_float``; float ones are clipped to [0, 1]."""
    t = as_float_images(images)
    if isinstance(nrow, bool) or not isinstance(nrow, numbers.Integral) or nrow < 1:
        raise ValueError(f"nrow: expected an integer >= 1 (images per row), got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"padding: expected an integer >= 0 (pixels between images), got {padding!r}")
    return grid_array(t, int(nrow), int(padding), pad_value)


def image_grid(images, nrow: int = 8, ax=None, title: str | None = None, *, padding: int = 2):
    """A grid of images (N, 1, 28, 28) in [0, 1] (or uint8 in 0..255), ``nrow`` per row, in grey levels
    (0 black, 1 white)."""
    grid = tile_images(images, nrow, padding=padding, pad_value=1.0)
    n = images.shape[0]
    fig, ax = _new_ax(ax, (max(2.0, grid.shape[1] / 40), max(2.0, grid.shape[0] / 40)))
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else f"{n} images", fontsize="medium")
    return fig


def plot_curves(hist_dict: dict, keys=None, ax=None, xlabel: str | None = None, ylabel: str = "loss", *,
                x_key: str = "step", title: str | None = None, logy: bool = False):
    """Training curves out of a history dict ({"loss_d": [...], "loss_g": [...], "step": [...]}).

    keys: the curves to draw (default: every list of numbers except ``x_key``). The x axis is
    ``hist_dict[x_key]`` when present with the same length, else 1, 2, ... (e.g. epochs).
    """
    if not isinstance(hist_dict, dict) or not hist_dict:
        raise TypeError("hist_dict: expected a non-empty dict {name: list of numbers}")
    if keys is None:
        keys = [k for k, v in hist_dict.items() if k != x_key and isinstance(v, (list, tuple, np.ndarray)) and len(v)]
    elif isinstance(keys, str):
        keys = [keys]
    keys = list(keys)
    if not keys:
        raise ValueError("keys: no curve to draw")
    missing = [k for k in keys if k not in hist_dict]
    if missing:
        raise ValueError(f"keys: {missing} are not in the history; it has {list(hist_dict)}")
    fig, ax = _new_ax(ax, (6.5, 3.8))
    used_x = False
    for k in keys:
        yv = np.asarray(hist_dict[k], dtype=float).ravel()
        if yv.size == 0:
            raise ValueError(f"hist_dict[{k!r}]: empty curve")
        xv = hist_dict.get(x_key)
        if xv is not None and len(xv) == len(yv):
            xv, used_x = np.asarray(xv, dtype=float), True
        else:
            xv = np.arange(1, len(yv) + 1)
        ax.plot(xv, yv, marker="o" if len(yv) <= 30 else None, ms=3, lw=1.3, label=k)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel if xlabel is not None else ("training step" if used_x else "epoch"))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(keys) > 1:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title, fontsize="medium")
    return fig


def plot_examples(examples, methods=None, labels=None, preds=None, eps=None, *, class_names=None,
                  title: str | None = None, cell: float = 1.0):
    """One row per class: the clean digit, the attacked digit and each defense's output, titled with the
    classifier's prediction (green: right, red: wrong) (the paper's Figs. 2-3).

    Either ``examples`` is an ``egan_lib.eval.results.Examples`` (or a ``Results`` carrying one) and ``eps``
    picks the attack budget (labels and predictions come with it); or ``examples`` is a dict
    {column: images (K, 1, 28, 28)} in column order, ``labels`` the K true classes and ``preds`` an
    optional dict {column: K predictions}. ``methods`` selects/orders the defense columns.
    """
    from .eval.results import Examples, Results
    if isinstance(examples, Results):
        if examples.examples is None:
            raise ValueError("examples: these results carry no examples (results read from JSON have none)")
        examples = examples.examples
    if isinstance(examples, Examples):
        if eps is None:
            raise ValueError(f"eps: which attack budget? one of {[round(e, 2) for e in examples.eps]}")
        e = examples.nearest_eps(eps)
        cols, pcols = examples.columns(e, methods)
        labels = examples.labels if labels is None else labels
        preds = pcols if preds is None else preds
        eps = e
    elif isinstance(examples, dict) and examples:
        cols = dict(examples)
        if methods is not None:
            keep = [c for c in ("clean", "attacked") if c in cols] + [m for m in methods if m not in ("clean", "attacked")]
            missing = [m for m in keep if m not in cols]
            if missing:
                raise ValueError(f"methods: {missing} are not columns of examples {list(cols)}")
            cols = {c: cols[c] for c in keep}
    else:
        raise TypeError("examples: expected an Examples, a Results with examples, or a dict {column: images}")
    arrs = {c: _to_numpy_images(v, f"examples[{c!r}]") for c, v in cols.items()}
    k = {a.shape[0] for a in arrs.values()}
    if len(k) != 1:
        raise ValueError(f"examples: every column needs the same number of images, got { {c: a.shape[0] for c, a in arrs.items()} }")
    k = k.pop()
    if labels is not None:
        labels = [int(v) for v in (labels.tolist() if hasattr(labels, "tolist") else labels)]
        if len(labels) != k:
            raise ValueError(f"labels: expected {k} labels (one per row), got {len(labels)}")
    preds = preds or {}
    for c, p in preds.items():
        if c in arrs and len(p) != k:
            raise ValueError(f"preds[{c!r}]: expected {k} predictions, got {len(p)}")
    names = list(arrs)
    fig = Figure(figsize=(cell * len(names) + 0.6, cell * 1.12 * k + 0.5), layout="constrained")
    axes = np.atleast_2d(fig.subplots(k, len(names), squeeze=False))
    for j, c in enumerate(names):
        for i in range(k):
            ax = axes[i, j]
            ax.imshow(arrs[c][i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"attacked\nε = {eps:.2f}" if c == "attacked" and eps is not None else c, fontsize=7)
            if c in preds:
                p = int(preds[c][i])
                name = class_names[p] if class_names else str(p)
                ok = labels is None or p == labels[i]
                ax.set_xlabel(f"pred {name}", fontsize=7, labelpad=1,
                              color="black" if labels is None else ("tab:green" if ok else "tab:red"))
            if j == 0 and labels is not None:
                ax.set_ylabel(class_names[labels[i]] if class_names else f"label {labels[i]}", fontsize=7)
    if title is None:
        title = "One test image per class: clean, attacked and each defense's output (prediction below each)"
        if eps is not None:
            title += f", ε = {eps:.2f}"
    fig.suptitle(title, fontsize=8)
    return fig
