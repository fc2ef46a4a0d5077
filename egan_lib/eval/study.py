"""Chapter 07's study: every defense under every threat model, as results entries of the results schema (egan_lib.eval.schema).

Threat models (named next to every number):

* ``oblivious``      FGSM through the classifier alone, then purify (the paper's setting; chapter 06)
* ``oblivious-pgd``  PGD through the classifier alone, then purify
* ``adaptive-pgd``   PGD through C(purify(x)) with exact gradients (differentiable defenses)
* ``adaptive-bpda``  PGD through C(purify(x)) with BPDA (identity backward) for PixelDefend / Defense-GAN
* ``on-manifold``    for EGAN: an image G(z) within the eps ball that C gets wrong

Expensive defenses are measured on the first ``n_expensive`` images of the same subset and with
``steps_expensive`` PGD steps; every entry records its n.
"""
from __future__ import annotations

import time

import torch

from .._validate import check_eps_list, check_images, check_labels, check_positive_int
from ..attacks.onmanifold import on_manifold_attack
from ..defenses import EXPENSIVE
from . import adaptive
from .results import combine_eps, to_method_entry
from .schema import validate_results_json
from .stats import wilson_interval


def adaptive_study(classifier, defenses: dict, x: torch.Tensor, y: torch.Tensor, eps_values, *,
                   n_main: int, n_expensive: int, steps: int = 40, steps_expensive: int = 10, restarts: int = 1,
                   generator=None, encoder=None, on_manifold_steps: int = 100, on_manifold_restarts: int = 2,
                   seed: int = 0, progress: bool = False, log=print) -> dict:
    """Run oblivious PGD, white-box/BPDA PGD and (for EGAN) the on-manifold attack.

    Returns {"results": {threat_model: {method: result dict}}, "seconds": {label: wall seconds},
    "settings": {...}}; result dicts are those of ``egan_lib.eval.adaptive`` (accuracy, ci95, n per eps).
    """
    x = check_images(x); y = check_labels(y, n=len(x))
    if not isinstance(defenses, dict) or not defenses:
        raise ValueError("defenses: expected a non-empty {name: defense} dict")
    eps_values = check_eps_list(eps_values, sorted_unique=False)
    n_main = min(check_positive_int(n_main, "n_main"), len(y))
    n_expensive = min(check_positive_int(n_expensive, "n_expensive"), n_main)
    steps = check_positive_int(steps, "steps"); steps_expensive = check_positive_int(steps_expensive, "steps_expensive")
    cheap = {k: d for k, d in defenses.items() if k not in EXPENSIVE}
    costly = {k: d for k, d in defenses.items() if k in EXPENSIVE}
    xm, ym, xe, ye = x[:n_main], y[:n_main], x[:n_expensive], y[:n_expensive]
    out = {"results": {}, "seconds": {}, "settings": {
        "eps": eps_values, "n_main": n_main, "n_expensive": n_expensive, "steps": steps,
        "steps_expensive": steps_expensive, "restarts": restarts, "on_manifold_steps": on_manifold_steps,
        "on_manifold_restarts": on_manifold_restarts, "seed": seed}}

    def timed(label, fn):
        t0 = time.perf_counter()
        r = fn()
        out["seconds"][label] = round(time.perf_counter() - t0, 1)
        log(f"[study] {label}: {out['seconds'][label]:.0f} s")
        return r

    # 1. oblivious PGD: one x_adv from C's gradient, every defense purifies it
    obl = {}
    if cheap:
        obl.update(timed("oblivious-pgd (cheap defenses)", lambda: adaptive.oblivious_pgd(
            cheap, classifier, xm, ym, eps_values, steps=steps, restarts=restarts, seed=seed, progress=progress)))
    if costly:
        obl.update(timed("oblivious-pgd (expensive defenses)", lambda: adaptive.oblivious_pgd(
            costly, classifier, xe, ye, eps_values, steps=steps, restarts=restarts, seed=seed, progress=progress)))
    out["results"]["oblivious-pgd"] = obl

    # 2. white-box PGD (exact gradients) or BPDA, per defense
    for name, d in defenses.items():
        exp = name in EXPENSIVE
        xs, ys = (xe, ye) if exp else (xm, ym)
        r = timed(f"white-box {name}", lambda: adaptive.whitebox_accuracy(
            d, classifier, xs, ys, eps_values, attack="pgd", steps=steps_expensive if exp else steps,
            restarts=restarts, seed=seed, progress=progress))
        out["results"].setdefault(r["threat_model"], {})[name] = r

    # 3. on-manifold attack on EGAN
    if generator is not None and encoder is not None and "EGAN" in defenses:
        rs = [timed(f"on-manifold eps {e}", lambda e=e: on_manifold_attack(
            generator, encoder, classifier, xm, ym, e, steps=on_manifold_steps, restarts=on_manifold_restarts,
            seed=seed, defense=defenses["EGAN"], progress=progress)) for e in eps_values]
        r = combine_eps(*rs)
        r["success_rate"] = {e: float(ri["success_rate"]) for e, ri in zip(eps_values, rs)}
        r["feasible_rate"] = {e: float(ri["feasible_rate"]) for e, ri in zip(eps_values, rs)}
        out["results"]["on-manifold"] = {"EGAN": r}
    return out


def study_entries(study: dict, *, dataset: str, profile: str, device: str, git_commit: str,
                  seconds_per_image: dict, extra: dict | None = None) -> list[dict]:
    """One results-JSON entry per threat model (``egan_lib.eval.schema``), for a list file."""
    entries = []
    for tm, per_method in study["results"].items():
        methods = {name: to_method_entry(r, float(seconds_per_image.get(name, float("nan"))))
                   for name, r in per_method.items()}
        for name, m in methods.items():
            if m["seconds_per_image"] != m["seconds_per_image"]:       # NaN: unknown time
                raise ValueError(f"seconds_per_image: missing for {name!r}")
        entry = {"dataset": dataset, "profile": profile, "device": device,
                 "n_test": max(m["n"] for m in methods.values()), "threat_model": tm, "git_commit": git_commit,
                 "methods": methods, "extra": {"settings": study["settings"], **(extra or {})}}
        validate_results_json(entry)
        entries.append(entry)
    return entries


def accuracy_table(entries: list[dict], eps_values, oblivious: dict | None = None, *, exclude=()) -> str:
    """Markdown: rows = (method, threat model), columns = eps, cells 'acc% [lo, hi]' and n; the threat
    models in ``exclude`` are left out (e.g. an on-manifold search that found no feasible point)."""
    rows = []
    allent = [e for e in ([oblivious] if oblivious else []) + list(entries) if e["threat_model"] not in exclude]
    methods = []
    for e in allent:
        for m in e["methods"]:
            if m not in methods:
                methods.append(m)
    head = "| method | threat model | n | " + " | ".join(f"eps {e:.2f}" for e in eps_values) + " |"
    rows += [head, "|" + "---|" * (3 + len(eps_values))]
    for m in methods:
        for e in allent:
            if m not in e["methods"]:
                continue
            v = e["methods"][m]
            cells = []
            for eps in eps_values:
                k = f"{eps:.2f}"
                if k in v["accuracy"]:
                    lo, hi = v["ci95"][k]
                    cells.append(f"{100 * v['accuracy'][k]:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")
                else:
                    cells.append("-")
            rows.append(f"| {m} | {e['threat_model']} | {v.get('n', e['n_test'])} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_threat_models(entries: list[dict], method: str, eps_values, *, oblivious: dict | None = None,
                       reference_lines=(), ax=None, title: str | None = None, exclude=("on-manifold",),
                       legend_size: int = 8, legend_below: bool | None = None):
    """Accuracy vs eps of one method under every threat model, with Wilson bands; published references
    drawn as points at the eps they were measured at. The on-manifold search is left out by default: an
    image for which it finds no G(z) in the eps ball is a feasibility result, not an accuracy."""
    fig = None
    if legend_below is None:
        legend_below = ax is None
    if ax is None:            # a Figure outside pyplot (as egan_lib.plots): shown once, when returned
        from matplotlib.figure import Figure
        fig = Figure(figsize=(8, 5.5), layout="constrained")
        ax = fig.add_subplot()
    allent = [e for e in ([oblivious] if oblivious else []) + list(entries) if e["threat_model"] not in exclude]
    for e in allent:
        if method not in e["methods"]:
            continue
        v = e["methods"][method]
        ks = [f"{eps:.2f}" for eps in eps_values if f"{eps:.2f}" in v["accuracy"]]
        xs = [float(k) for k in ks]
        ax.plot(xs, [100 * v["accuracy"][k] for k in ks], "o-", label=f"{e['threat_model']} (n = {v.get('n', e['n_test'])})")
        ax.fill_between(xs, [100 * v["ci95"][k][0] for k in ks], [100 * v["ci95"][k][1] for k in ks], alpha=0.2)
    for ref, marker in zip(reference_lines, "*Ds^v"):
        ax.plot([ref.eps], [100 * ref.accuracy], marker, c="k", ms=8, ls="none",
                label=f"{ref.label}: {100 * ref.accuracy:.1f}% at eps {ref.eps:g}")
    ax.set(xlabel="eps (L-inf, pixels in [0, 1])", ylabel="accuracy (%)", ylim=(0, 102),
           title=title or f"{method}: accuracy under each threat model (95% Wilson bands)")
    if legend_below:          # below the axes: it never hides a curve or a reference point
        ax.legend(fontsize=legend_size, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    else:
        ax.legend(fontsize=legend_size, loc="lower left")
    return fig or ax.figure


def feasibility_table(result: dict, eps_values) -> str:
    """Markdown for an on-manifold search (``adaptive_study``'s "on-manifold" result): per eps, the share of
    images for which some G(z) lies inside the eps ball, and the share it fooled C with (attack success),
    each with its Wilson 95% interval and n. A feasibility result, not an accuracy."""
    n = result["n"]
    rows = ["| eps | images with a G(z) inside the eps ball | of which C is fooled (attack success) | n |",
            "|---|---|---|---|"]
    for e in eps_values:
        cells = []
        for key in ("feasible_rate", "success_rate"):
            k = round(result[key][e] * n)
            lo, hi = wilson_interval(k, n)
            cells.append(f"{k / n:.1%} [{lo:.1%}, {hi:.1%}]")
        rows.append(f"| {e:.2f} | {cells[0]} | {cells[1]} | {n} |")
    return "\n".join(rows)
