"""The evaluation protocol of the paper, made explicit (SPEC section 6), and its JSON results file.

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

Results file (``book/results/<dataset>-<profile>.json``), exactly the SPEC schema::

    {"dataset", "profile", "device", "n_test", "threat_model", "git_commit",
     "methods": {NAME: {"accuracy": {EPS: float}, "ci95": {EPS: [lo, hi]}, "seconds_per_image": float,
                        "n": int (optional)}},
     "runtime": {...} (optional), "extra": {...} (optional)}

with EPS keys written with two decimals ("0.30"). A file may also hold a list of such objects,
one per threat model (``merge_results``).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._validate import check_eps, check_images, check_labels, check_module, check_positive_int
from .attacks import fgsm_grid, predict
from .config import device as _pick_device, synchronize

__all__ = [
    "wilson_interval", "eps_key", "evaluate", "Results", "Examples", "time_per_image",
    "validate_results_json", "write_results", "read_results", "merge_results", "select_results", "git_commit",
    "REQUIRED_KEYS", "THREAT_MODELS",
]

REQUIRED_KEYS = ("dataset", "profile", "device", "n_test", "threat_model", "git_commit", "methods")
OPTIONAL_KEYS = ("runtime", "extra")
METHOD_REQUIRED_KEYS = ("accuracy", "ci95", "seconds_per_image")
METHOD_OPTIONAL_KEYS = ("n",)
EPS_KEY_RE = re.compile(r"^[0-9]\.[0-9]{2}$")
#: names used in the book; any other non-empty name is accepted too (say what it means in the chapter)
THREAT_MODELS = ("oblivious", "adaptive-pgd", "adaptive-bpda", "on-manifold")
_TOL = 1e-9


# ---------------------------------------------------------------------------------------- statistics
def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n (z = 1.96: 95%).

    Unlike the normal ("Wald") interval it stays inside [0, 1] and is not empty at k = 0 or k = n:
    ``wilson_interval(0, 10) == (0.0, 0.2775...)``.
    """
    for v, name in ((k, "k"), (n, "n")):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name}: expected an integer count, got {type(v).__name__}")
    k, n = int(k), int(n)
    if n < 1:
        raise ValueError(f"n: expected at least one trial (n >= 1), got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k: expected 0 <= k <= n = {n}, got {k}")
    if isinstance(z, bool) or not isinstance(z, numbers.Real) or not math.isfinite(z) or z <= 0:
        raise ValueError(f"z: expected a finite number > 0, got {z!r}")
    p = k / n
    z2 = float(z) ** 2
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, center - half)
    hi = 1.0 if k == n else min(1.0, center + half)
    return lo, hi


def eps_key(eps) -> str:
    """The JSON key of an eps: two decimals ("0.30"); eps that two decimals cannot hold are rejected."""
    e = check_eps(eps, "eps")
    if abs(round(e, 2) - e) > 1e-6:
        raise ValueError(f"eps: {e} cannot be written with two decimals (the results keys are like '0.30'); "
                         "use a grid of multiples of 0.01")
    return f"{e:.2f}"


# ---------------------------------------------------------------------------------------- results
@dataclass
class Examples:
    """One example per class, kept at every eps so a chapter can show what each defense did.

    index: positions in the evaluated subset; labels: their true classes; clean: (K,1,28,28);
    attacked[eps]: (K,1,28,28); attacked_preds[eps]: (K,) the classifier on the attacked images;
    outputs[name][eps]: the defense's output; preds[name][eps]: the classifier on that output.
    """
    index: torch.Tensor
    labels: torch.Tensor
    clean: torch.Tensor
    clean_preds: torch.Tensor
    attacked: dict = field(default_factory=dict)
    attacked_preds: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    preds: dict = field(default_factory=dict)

    @property
    def eps(self) -> list[float]:
        return sorted(self.attacked)

    def nearest_eps(self, eps) -> float:
        """The eps of the grid closest to ``eps`` (raises if none is within 1e-6)."""
        return _match_eps(eps, self.eps)

    def columns(self, eps, methods=None) -> tuple[dict, dict]:
        """({column: images}, {column: predictions}) at one eps: clean, attacked, then each defense."""
        e = self.nearest_eps(eps)
        methods = list(self.outputs) if methods is None else list(methods)
        unknown = [m for m in methods if m not in self.outputs]
        if unknown:
            raise ValueError(f"methods: {unknown} have no examples; known: {list(self.outputs)}")
        imgs = {"clean": self.clean, "attacked": self.attacked[e]}
        preds = {"clean": self.clean_preds, "attacked": self.attacked_preds[e]}
        for m in methods:
            imgs[m] = self.outputs[m][e]
            preds[m] = self.preds[m][e]
        return imgs, preds


@dataclass
class Results:
    """What ``evaluate`` measured. accuracy[name][eps], ci95[name][eps] = (lo, hi), correct[name][eps] = k,
    n[name] = images evaluated, seconds_per_image[name]; predictions[name][eps] = (n,) predicted classes;
    examples: an ``Examples`` (or None); timing: device, threads, batch size, repeats of the timing."""
    methods: list
    eps: list
    accuracy: dict
    ci95: dict
    n: dict
    seconds_per_image: dict
    examples: Examples | None = None
    correct: dict = field(default_factory=dict)
    predictions: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    threat_model: str = "oblivious"
    attack: str = "fgsm"
    n_test: int | None = None

    def to_json_dict(self, dataset: str, profile: str, device=None, git_commit: str | None = None,
                     threat_model: str | None = None, *, extra: dict | None = None, runtime: dict | None = None) -> dict:
        """The SPEC results object (validated). device defaults to the timing device, git_commit to
        ``git_commit()``, threat_model to the one evaluated."""
        if device is None:
            device = self.timing.get("device", "unknown")
        obj = {
            "dataset": dataset,
            "profile": profile,
            "device": str(device),
            "n_test": int(self.n_test if self.n_test is not None else max(self.n.values())),
            "threat_model": self.threat_model if threat_model is None else threat_model,
            "git_commit": _head_commit() if git_commit is None else git_commit,
            "methods": {},
        }
        for m in self.methods:
            obj["methods"][m] = {
                "accuracy": {eps_key(e): float(self.accuracy[m][e]) for e in self.eps},
                "ci95": {eps_key(e): [float(self.ci95[m][e][0]), float(self.ci95[m][e][1])] for e in self.eps},
                "seconds_per_image": float(self.seconds_per_image[m]),
                "n": int(self.n[m]),
            }
        rt = {k: v for k, v in self.timing.items() if k != "per_method"} if self.timing else {}
        if runtime:
            rt.update(runtime)
        if rt:
            obj["runtime"] = _jsonable(rt)
        ex = {"attack": self.attack}
        if extra:
            ex.update(extra)
        obj["extra"] = _jsonable(ex)
        validate_results_json(obj)
        return obj

    @classmethod
    def from_json_dict(cls, obj: dict) -> "Results":
        """Results (without examples or predictions) from a validated results object."""
        if isinstance(obj, list):
            raise ValueError("from_json_dict: got a list of results; pick one with select_results(obj, threat_model)")
        validate_results_json(obj)
        methods = list(obj["methods"])
        keys = list(next(iter(obj["methods"].values()))["accuracy"])
        eps = sorted(float(k) for k in keys)
        acc, ci, n, spi = {}, {}, {}, {}
        for m, v in obj["methods"].items():
            acc[m] = {float(k): float(a) for k, a in v["accuracy"].items()}
            ci[m] = {float(k): (float(c[0]), float(c[1])) for k, c in v["ci95"].items()}
            n[m] = int(v.get("n", obj["n_test"]))
            spi[m] = float(v["seconds_per_image"])
        timing = dict(obj.get("runtime", {}))
        timing.setdefault("device", obj["device"])
        return cls(methods, eps, acc, ci, n, spi, threat_model=obj["threat_model"],
                   attack=str(obj.get("extra", {}).get("attack", "fgsm")), n_test=int(obj["n_test"]), timing=timing)

    def table(self, eps=None, digits: int = 1) -> str:
        """A markdown table: one row per method, 'acc% [lo, hi]' per eps, n and seconds per image."""
        eps = self.eps if eps is None else [_match_eps(e, self.eps) for e in eps]
        head = "| method | n | s/image | " + " | ".join(f"eps {e:.2f}" for e in eps) + " |"
        rows = [head, "|" + "---|" * (3 + len(eps))]
        for m in self.methods:
            cells = [f"{100 * self.accuracy[m][e]:.{digits}f} [{100 * self.ci95[m][e][0]:.{digits}f}, "
                     f"{100 * self.ci95[m][e][1]:.{digits}f}]" for e in eps]
            rows.append(f"| {m} | {self.n[m]} | {self.seconds_per_image[m]:.3g} | " + " | ".join(cells) + " |")
        return "\n".join(rows)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, (str, bool)) or v is None:
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    return str(v)


def _match_eps(eps, grid) -> float:
    e = check_eps(eps, "eps")
    for g in grid:
        if abs(g - e) <= 1e-6:
            return g
    raise ValueError(f"eps: {e} is not in the evaluated grid {[round(g, 4) for g in grid]}")


# ---------------------------------------------------------------------------------------- timing
def time_per_image(defense, x: torch.Tensor, *, repeats: int = 3, warmup: int = 1) -> dict:
    """Seconds per image of ``defense.purify`` (or any callable) on the batch x: ``warmup`` untimed calls,
    then the median of ``repeats`` timed calls, each bracketed by a device synchronisation."""
    check_images(x, "x (timing batch)")
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


# ---------------------------------------------------------------------------------------- evaluate
def _check_defenses(defenses) -> list:
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


def _check_eps_values(eps_values) -> list[float]:
    if eps_values is None or isinstance(eps_values, (numbers.Real, str)) or len(eps_values) == 0:
        raise ValueError(f"eps_values: expected a non-empty list of eps in [0, 1], got {eps_values!r}")
    eps = [check_eps(e, "eps_values[]") for e in eps_values]
    keys = [eps_key(e) for e in eps]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"eps_values: duplicate eps {dup}")
    return sorted(eps)


def _check_adv_tensor(t, x, name, n_needed) -> torch.Tensor:
    check_images(t, name)
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
    check_images(x, "x")
    y = check_labels(y, n=x.shape[0], name="y")
    N = x.shape[0]
    defenses = _check_defenses(defenses)
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
        eps = _check_eps_values(eps_values)
        adv_shared = fgsm_grid(classifier, x, y, eps, batch_size=batch_size, device=dev)
    else:
        if not isinstance(adv, dict) or not adv:
            raise TypeError("adv: expected a non-empty dict {eps: x_adv} or {method: {eps: x_adv}}")
        per_method_adv = all(isinstance(v, dict) for v in adv.values())
        if per_method_adv:
            missing = [m for m in names if m not in adv]
            if missing:
                raise ValueError(f"adv: no adversarial examples for method(s) {missing}")
            grids = {m: _check_eps_values(list(adv[m])) for m in names}
            eps = grids[names[0]]
            for m in names:
                if [eps_key(e) for e in grids[m]] != [eps_key(e) for e in eps]:
                    raise ValueError(f"adv[{m!r}]: eps grid {grids[m]} differs from adv[{names[0]!r}]: {eps}")
            adv_m = {m: {e: _check_adv_tensor(adv[m][_match_eps(e, list(adv[m]))], x,
                                              f"adv[{m!r}][{e}]", n_per[m]) for e in eps} for m in names}
        else:
            if any(isinstance(v, dict) for v in adv.values()):
                raise TypeError("adv: mixes tensors and dicts; use {eps: x_adv} or {method: {eps: x_adv}}")
            eps = _check_eps_values(list(adv))
            adv_shared = {e: _check_adv_tensor(adv[_match_eps(e, list(adv))], x, f"adv[{e}]", N) for e in eps}
            for e, t in adv_shared.items():
                if t.shape[0] != N:
                    raise ValueError(f"adv[{e}]: expected {N} images (one per test image), got {t.shape[0]}")
        if eps_values is not None and [eps_key(e) for e in _check_eps_values(eps_values)] != [eps_key(e) for e in eps]:
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
                out = _purify(d, xa, batch_size, f"{m}.purify (eps={e:.2f})")
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
                out = _purify(d, batch, batch_size, f"{m}.purify (examples)")
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


def _purify(defense, x, batch_size, what) -> torch.Tensor:
    out = defense.purify(x, batch_size=batch_size)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{what}: expected a tensor, got {type(out).__name__}")
    if tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"{what}: returned shape {tuple(out.shape)}, expected the input's {tuple(x.shape)}")
    out = out.detach().float().cpu()
    check_images(out, what)
    return out


# ---------------------------------------------------------------------------------------- JSON
def _is_num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _validate_one(obj, where: str = "") -> None:
    def fail(msg):
        raise ValueError(f"results{where}: {msg}")

    if not isinstance(obj, dict):
        fail(f"expected a JSON object (dict), got {type(obj).__name__}")
    for k in REQUIRED_KEYS:
        if k not in obj:
            fail(f"missing key {k!r} (required: {list(REQUIRED_KEYS)})")
    extra_keys = [k for k in obj if k not in REQUIRED_KEYS and k not in OPTIONAL_KEYS]
    if extra_keys:
        fail(f"unknown key(s) {extra_keys}; allowed: {list(REQUIRED_KEYS) + list(OPTIONAL_KEYS)}")
    for k in ("dataset", "profile", "device", "threat_model", "git_commit"):
        if not isinstance(obj[k], str) or not obj[k].strip():
            fail(f"{k!r} must be a non-empty string, got {obj[k]!r}")
    n_test = obj["n_test"]
    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 1:
        fail(f"'n_test' must be an integer >= 1, got {n_test!r}")
    for k in OPTIONAL_KEYS:
        if k in obj and not isinstance(obj[k], dict):
            fail(f"{k!r} must be an object (dict), got {type(obj[k]).__name__}")
    methods = obj["methods"]
    if not isinstance(methods, dict) or not methods:
        fail("'methods' must be a non-empty object {name: {...}}")
    ref_keys = None
    for name, m in methods.items():
        at = f"methods[{name!r}]"
        if not isinstance(name, str) or not name.strip():
            fail(f"method names must be non-empty strings, got {name!r}")
        if not isinstance(m, dict):
            fail(f"{at} must be an object, got {type(m).__name__}")
        for k in METHOD_REQUIRED_KEYS:
            if k not in m:
                fail(f"{at}: missing key {k!r} (required: {list(METHOD_REQUIRED_KEYS)})")
        bad = [k for k in m if k not in METHOD_REQUIRED_KEYS and k not in METHOD_OPTIONAL_KEYS]
        if bad:
            fail(f"{at}: unknown key(s) {bad}; allowed: {list(METHOD_REQUIRED_KEYS) + list(METHOD_OPTIONAL_KEYS)}")
        accd, cid = m["accuracy"], m["ci95"]
        if not isinstance(accd, dict) or not accd:
            fail(f"{at}.accuracy must be a non-empty object {{eps: accuracy}}")
        if not isinstance(cid, dict):
            fail(f"{at}.ci95 must be an object {{eps: [lo, hi]}}")
        for key in accd:
            if not isinstance(key, str) or not EPS_KEY_RE.match(key) or float(key) > 1.0:
                fail(f"{at}.accuracy: eps key {key!r} must be written with two decimals in [0, 1], like '0.30'")
        if set(cid) != set(accd):
            fail(f"{at}: ci95 eps keys {sorted(cid)} differ from accuracy eps keys {sorted(accd)}")
        if ref_keys is None:
            ref_keys, ref_name = set(accd), name
        elif set(accd) != ref_keys:
            fail(f"{at}: eps keys {sorted(accd)} differ from those of {ref_name!r} {sorted(ref_keys)} "
                 "(every method is evaluated at the same eps)")
        for key, a in accd.items():
            if not _is_num(a) or not 0.0 <= a <= 1.0:
                fail(f"{at}.accuracy[{key!r}] must be a number in [0, 1], got {a!r}")
            c = cid[key]
            if not isinstance(c, (list, tuple)) or len(c) != 2 or not all(_is_num(v) for v in c):
                fail(f"{at}.ci95[{key!r}] must be a pair [lo, hi] of numbers, got {c!r}")
            lo, hi = float(c[0]), float(c[1])
            if not (0.0 <= lo <= 1.0 and 0.0 <= hi <= 1.0):
                fail(f"{at}.ci95[{key!r}] = {list(c)} must lie in [0, 1]")
            if lo > hi:
                fail(f"{at}.ci95[{key!r}]: lo {lo} > hi {hi}")
            if not lo - 1e-6 <= a <= hi + 1e-6:
                fail(f"{at}: accuracy {a} at eps {key} lies outside its interval [{lo}, {hi}]")
        s = m["seconds_per_image"]
        if not _is_num(s) or s <= 0:
            fail(f"{at}.seconds_per_image must be a finite number > 0, got {s!r}")
        if "n" in m:
            k = m["n"]
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_test:
                fail(f"{at}.n must be an integer in [1, n_test = {n_test}], got {k!r}")
    try:
        json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as e:
        fail(f"not JSON-serialisable (strict JSON, no NaN/inf): {e}")


def validate_results_json(obj) -> None:
    """Check a results object (or a list of them, one per threat model) against the SPEC schema.
    Raises ValueError naming the first problem; returns None when it is valid."""
    if isinstance(obj, list):
        if not obj:
            raise ValueError("results: empty list; expected at least one results object")
        seen = {}
        for i, o in enumerate(obj):
            _validate_one(o, f"[{i}]")
            key = (o["dataset"], o["profile"], o["threat_model"])
            if key in seen:
                raise ValueError(f"results[{i}]: threat_model {o['threat_model']!r} for {o['dataset']}/{o['profile']} "
                                 f"already appears at [{seen[key]}]; one entry per threat model")
            seen[key] = i
        return None
    _validate_one(obj)
    return None


def merge_results(*entries) -> list:
    """One list of results objects, one per (dataset, profile, threat_model): later entries replace earlier
    ones with the same key (a rerun of chapter 07 replaces its own entry). Each argument is a results
    object or a list of them."""
    flat = []
    for e in entries:
        flat.extend(e if isinstance(e, list) else [e])
    if not flat:
        raise ValueError("merge_results: nothing to merge")
    out, where = [], {}
    for i, o in enumerate(flat):
        _validate_one(o, f" (entry {i})")
        key = (o["dataset"], o["profile"], o["threat_model"])
        if key in where:
            out[where[key]] = o
        else:
            where[key] = len(out)
            out.append(o)
    validate_results_json(out)
    return out


def select_results(obj, threat_model: str = "oblivious") -> dict:
    """The results object with this threat model out of a single object or a list."""
    validate_results_json(obj)
    items = obj if isinstance(obj, list) else [obj]
    hits = [o for o in items if o["threat_model"] == threat_model]
    if not hits:
        raise ValueError(f"threat_model: no results for {threat_model!r}; present: {[o['threat_model'] for o in items]}")
    if len(hits) > 1:
        raise ValueError(f"threat_model: {len(hits)} entries for {threat_model!r} (several data sets/profiles); "
                         "select by hand")
    return hits[0]


def write_results(obj, path) -> Path:
    """Validate, then write atomically (temp file in the same folder + os.replace). Returns the path."""
    validate_results_json(obj)
    from ._atomic import atomic_write
    data = (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def read_results(path, threat_model: str | None = None):
    """Read and validate a results file; with ``threat_model``, return that entry only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist (run chapter 06 first)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    try:
        validate_results_json(obj)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return select_results(obj, threat_model) if threat_model is not None else obj


def _head_commit() -> str:
    return git_commit()


def git_commit(short: bool = True, cwd=None, timeout: float = 5.0) -> str:
    """The commit of the project checkout (short hash), or "unknown" (no git, not a checkout, timeout)."""
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parent.parent
    cmd = ["git", "rev-parse", "--short" if short else "--verify", "HEAD"]
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    out = r.stdout.strip()
    return out if r.returncode == 0 and re.fullmatch(r"[0-9a-f]{4,64}", out) else "unknown"
