"""The paper's evaluation protocol, made explicit.

Protocol (paper, "oblivious" / gray-box threat model):

* one fixed test subset x, y for every method;
* FGSM is computed ONCE per eps with the gradient through the classifier alone
  (``egan_lib.attacks.fgsm_grid``), and every defense purifies the very same x_adv;
* accuracy = mean(C(defense.purify(x_adv)) == y), reported with its Wilson 95% interval and the
  number of images n (an expensive method may use the first n images of the same subset:
  ``n_per_method``; the subsets are nested, so they still share the same x_adv);
* seconds per image for each defense: one warm-up call, then the median of ``timing_repeats`` calls
  on the same batch of ``timing_batch`` images, with the device synchronised around the clock.

Other threat models (adaptive attacks, chapter 07) plug in their own adversarial examples with
``adv=``: shared ``{eps: x_adv}`` or per-method ``{name: {eps: x_adv}}``, and name the threat model.
"""
from __future__ import annotations

import torch

from .._validate import check_eps_list, check_images, check_labels, check_module, check_positive_int
from ..attacks.base import THREAT_MODELS, purify_batched
from ..attacks.fgsm import fgsm_grid
from ..attacks.base import predict
from ..config import device as _pick_device
from .results import Examples, Results, match_eps
from .stats import eps_key, wilson_interval
from .timing import time_per_image


def check_defenses(defenses) -> list:
    if isinstance(defenses, dict):
        defenses = list(defenses.values())
    if hasattr(defenses, "purify") or isinstance(defenses, (str, bytes)):
        raise TypeError("defenses: expected a list of defenses, got a single object (wrap it in a list)")
    try:
        defenses = list(defenses)
    except TypeError as e:
        raise TypeError(f"defenses: expected a list of defenses, got {type(defenses).__name__}") from e
    if not defenses:
        raise ValueError("defenses: empty list; expected at least one defense (e.g. the identity 'Original')")
    names = []
    for i, d in enumerate(defenses):
        name = getattr(d, "name", None)
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"defenses[{i}]: expected an object with a non-empty str .name, got {type(d).__name__}")
        if not callable(getattr(d, "purify", None)):
            raise TypeError(f"defenses[{i}] ({name}): has no callable .purify(x, batch_size=None)")
        names.append(name)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"defenses: duplicate names {dup}; every method needs its own name")
    return defenses


def _check_adv_tensor(t, x, name, n_needed) -> torch.Tensor:
    t = check_images(t, name)
    if t.shape[0] < n_needed:
        raise ValueError(f"{name}: expected at least {n_needed} images (the evaluated subset), got {t.shape[0]}")
    return t


def _pick_examples(y: torch.Tensor, example_index) -> torch.Tensor:
    if example_index is not None:
        idx = torch.as_tensor(example_index, dtype=torch.long).flatten()
        if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= len(y):
            raise ValueError(f"example_index: expected indices in [0, {len(y) - 1}], got {idx.tolist()}")
        return idx
    classes = torch.unique(y)  # sorted; one per class present (all ten on a real subset)
    first = torch.stack([torch.nonzero(y == c).flatten()[0] for c in classes])
    return first


def evaluate(classifier: torch.nn.Module, defenses, x: torch.Tensor, y: torch.Tensor, eps_values=None, *,
             attack: str = "fgsm", threat_model: str = "oblivious", batch_size: int = 256, device=None,
             n_per_method: dict | None = None, timing_batch: int = 64, timing_repeats: int = 3,
             timing_warmup: int = 1, progress: bool = False, adv: dict | None = None,
             example_index=None) -> Results:
    """Accuracy of classifier(defense.purify(x_adv)) for every defense at every eps, and time per image.

    classifier: the attacked model C (its own device, or ``device``). defenses: objects with ``.name`` and
    ``.purify(x, batch_size=None)``. x, y: the fixed test subset. eps_values: the FGSM grid.

    adv=None: the paper's oblivious FGSM (gradient through C alone), computed once per eps and shared by
    all methods; ``attack`` must be "fgsm" and ``threat_model`` "oblivious". Otherwise ``adv`` holds the
    adversarial examples of another attack: ``{eps: x_adv}`` (shared) or ``{name: {eps: x_adv}}``
    (per method, e.g. adaptive attacks); name it with ``attack`` and ``threat_model``.

    n_per_method: {name: n} evaluates that method on the first n images only (nested subset).
    Timing: ``timing_warmup`` calls, then the median of ``timing_repeats`` on the first ``timing_batch``
    attacked images at the eps nearest 0.5 (the clean images when adv is per method).
    """
    check_module(classifier, "classifier")
    x = check_images(x, "x")
    y = check_labels(y, n=x.shape[0], name="y")
    N = x.shape[0]
    defenses = check_defenses(defenses)
    names = [d.name for d in defenses]
    batch_size = check_positive_int(batch_size, "batch_size")
    timing_batch = check_positive_int(timing_batch, "timing_batch")
    timing_repeats = check_positive_int(timing_repeats, "timing_repeats")
    if not isinstance(attack, str) or not attack:
        raise ValueError(f"attack: expected a non-empty name, got {attack!r}")
    if not isinstance(threat_model, str) or not threat_model.strip():
        raise ValueError(f"threat_model: expected a non-empty name such as {THREAT_MODELS}, got {threat_model!r}")
    dev = _pick_device(device) if device is not None else next(classifier.parameters(), torch.empty(0)).device

    n_per = {m: N for m in names}
    if n_per_method:
        if not isinstance(n_per_method, dict):
            raise TypeError(f"n_per_method: expected a dict name -> n, got {type(n_per_method).__name__}")
        unknown = sorted(set(n_per_method) - set(names))
        if unknown:
            raise ValueError(f"n_per_method: unknown method(s) {unknown}; methods are {names}")
        for m, k in n_per_method.items():
            if k is None:
                continue
            k = check_positive_int(k, f"n_per_method[{m!r}]")
            if k > N:
                raise ValueError(f"n_per_method[{m!r}]: {k} > the {N} images of the subset")
            n_per[m] = k

    # ---- adversarial examples: one set per eps, shared (or given per method)
    per_method_adv = False
    if adv is None:
        if attack != "fgsm":
            raise ValueError(f"attack: only 'fgsm' is built in; pass the adversarial examples of {attack!r} as adv=")
        if threat_model != "oblivious":
            raise ValueError(f"threat_model: the built-in FGSM takes the gradient through the classifier alone "
                             f"('oblivious'); for {threat_model!r} pass the adversarial examples as adv=")
        eps = sorted(check_eps_list(eps_values, sorted_unique=False))
        adv_shared = fgsm_grid(classifier, x, y, eps, batch_size=batch_size, device=dev)
    else:
        if not isinstance(adv, dict) or not adv:
            raise TypeError("adv: expected a non-empty dict {eps: x_adv} or {method: {eps: x_adv}}")
        per_method_adv = all(isinstance(v, dict) for v in adv.values())
        if per_method_adv:
            missing = [m for m in names if m not in adv]
            if missing:
                raise ValueError(f"adv: no adversarial examples for method(s) {missing}")
            grids = {m: sorted(check_eps_list(list(adv[m]), sorted_unique=False)) for m in names}
            eps = grids[names[0]]
            for m in names:
                if [eps_key(e) for e in grids[m]] != [eps_key(e) for e in eps]:
                    raise ValueError(f"adv[{m!r}]: eps grid {grids[m]} differs from adv[{names[0]!r}]: {eps}")
            adv_m = {m: {e: _check_adv_tensor(adv[m][match_eps(e, list(adv[m]))], x,
                                              f"adv[{m!r}][{e}]", n_per[m]) for e in eps} for m in names}
        else:
            if any(isinstance(v, dict) for v in adv.values()):
                raise TypeError("adv: mixes tensors and dicts; use {eps: x_adv} or {method: {eps: x_adv}}")
            eps = sorted(check_eps_list(list(adv), sorted_unique=False))
            adv_shared = {e: _check_adv_tensor(adv[match_eps(e, list(adv))], x, f"adv[{e}]", N) for e in eps}
            for e, t in adv_shared.items():
                if t.shape[0] != N:
                    raise ValueError(f"adv[{e}]: expected {N} images (one per test image), got {t.shape[0]}")
        given = None if eps_values is None else sorted(check_eps_list(eps_values, sorted_unique=False))
        if given is not None and [eps_key(e) for e in given] != [eps_key(e) for e in eps]:
            raise ValueError(f"eps_values {list(eps_values)} do not match the eps of adv {eps}")

    def adv_for(m, e):
        return adv_m[m][e] if per_method_adv else adv_shared[e]

    # ---- examples: one per class, clean and attacked
    ex_idx = _pick_examples(y, example_index)
    ex_clean = x[ex_idx].cpu()
    examples = Examples(index=ex_idx, labels=y[ex_idx].cpu(), clean=ex_clean,
                        clean_preds=predict(classifier, ex_clean, batch_size=batch_size, device=dev))
    if not per_method_adv:
        for e in eps:
            examples.attacked[e] = adv_shared[e][ex_idx].cpu()
            examples.attacked_preds[e] = predict(classifier, examples.attacked[e], batch_size=batch_size, device=dev)

    # ---- accuracy
    from tqdm.auto import tqdm
    acc, ci, corr, preds_all = {m: {} for m in names}, {m: {} for m in names}, {m: {} for m in names}, {m: {} for m in names}
    bar = tqdm(total=len(names) * len(eps), desc="evaluate", disable=not progress, leave=False)
    try:
        for d in defenses:
            m, n_m = d.name, n_per[d.name]
            y_m = y[:n_m].cpu()
            examples.outputs[m], examples.preds[m] = {}, {}
            inside = ex_idx < n_m  # examples whose output comes out of the evaluation itself
            for e in eps:
                bar.set_postfix_str(f"{m} eps={e:.2f}")
                xa = adv_for(m, e)[:n_m]
                out = purify_batched(d, xa, batch_size)
                p = predict(classifier, out, batch_size=batch_size, device=dev)
                k = int((p == y_m).sum())
                acc[m][e], ci[m][e], corr[m][e], preds_all[m][e] = k / n_m, wilson_interval(k, n_m), k, p
                ex_out = torch.empty_like(ex_clean)
                ex_out[inside] = out[ex_idx[inside]].cpu()
                examples.outputs[m][e] = ex_out
                bar.update(1)
            if not bool(inside.all()):  # the examples outside a nested subset: one extra call for all eps
                miss = ex_idx[~inside]
                batch = torch.cat([adv_for(m, e)[miss] for e in eps])
                out = purify_batched(d, batch, batch_size)
                for j, e in enumerate(eps):
                    examples.outputs[m][e][~inside] = out[j * len(miss):(j + 1) * len(miss)].cpu()
            for e in eps:
                examples.preds[m][e] = predict(classifier, examples.outputs[m][e], batch_size=batch_size, device=dev)
            if per_method_adv:  # per-method attacks: the attacked column shows the first method's examples
                for e in eps:
                    if e not in examples.attacked:
                        examples.attacked[e] = adv_for(m, e)[ex_idx].cpu()
                        examples.attacked_preds[e] = predict(classifier, examples.attacked[e],
                                                             batch_size=batch_size, device=dev)
    finally:
        bar.close()

    # ---- time per image: the same batch for every defense
    if per_method_adv:
        tb = x[:timing_batch]
    else:
        e_mid = min(eps, key=lambda e: abs(e - 0.5))
        tb = adv_shared[e_mid][:timing_batch]
    tb = tb.cpu().contiguous()
    spi, per_method_timing = {}, {}
    for d in defenses:
        t = time_per_image(d, tb, repeats=timing_repeats, warmup=timing_warmup)
        spi[d.name] = t["seconds_per_image"]
        per_method_timing[d.name] = {"device": t["device"], "times": t["times"]}
    timing = {"device": per_method_timing[names[0]]["device"], "threads": torch.get_num_threads(),
              "batch_size": int(tb.shape[0]), "repeats": timing_repeats, "warmup": int(timing_warmup),
              "eval_batch": batch_size, "classifier_device": str(dev), "per_method": per_method_timing}
    devs = sorted({v["device"] for v in per_method_timing.values()})
    if len(devs) > 1:
        timing["device"] = ",".join(devs)
    return Results(methods=names, eps=eps, accuracy=acc, ci95=ci, n=n_per, seconds_per_image=spi,
                   examples=examples, correct=corr, predictions=preds_all, timing=timing,
                   threat_model=threat_model, attack=attack, n_test=N)
