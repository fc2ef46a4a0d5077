"""What an evaluation returns (``Results``, ``Examples``), its conversion to the results file, reading,
merging and writing those files (validated by ``egan_lib.eval.schema``), and the commit that made them."""
from __future__ import annotations

import json
import numbers
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .._atomic import atomic_write
from .._validate import check_eps, check_positive_float
from .schema import validate_one_result, validate_results_json
from .stats import eps_key

#: The environment variable through which the pipeline hands one commit stamp to every chapter.
GIT_COMMIT_ENV = "EGAN_GIT_COMMIT"


def _git_commit() -> str:
    return git_commit()


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
        return match_eps(eps, self.eps)

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
    parts: dict = field(default_factory=dict)   # {name: {"n": [n_k], "accuracy": {eps: [acc_k]}}} (pooled rows)

    def to_json_dict(self, dataset: str, profile: str, device=None, git_commit: str | None = None,
                     threat_model: str | None = None, *, extra: dict | None = None, runtime: dict | None = None,
                     settings: dict | None = None) -> dict:
        """The results object of ``egan_lib.eval.schema`` (validated). device defaults to the timing device, git_commit to
        ``git_commit()``, threat_model to the one evaluated."""
        if device is None:
            device = self.timing.get("device", "unknown")
        obj = {
            "dataset": dataset,
            "profile": profile,
            "device": str(device),
            "n_test": int(self.n_test if self.n_test is not None else max(self.n.values())),
            "threat_model": self.threat_model if threat_model is None else threat_model,
            "git_commit": _git_commit() if git_commit is None else git_commit,
            "methods": {},
        }
        for m in self.methods:
            obj["methods"][m] = {
                "accuracy": {eps_key(e): float(self.accuracy[m][e]) for e in self.eps},
                "ci95": {eps_key(e): [float(self.ci95[m][e][0]), float(self.ci95[m][e][1])] for e in self.eps},
                "seconds_per_image": float(self.seconds_per_image[m]),
                "n": int(self.n[m]),
            }
            if settings and m in settings:
                obj["methods"][m]["settings"] = _jsonable(settings[m])
            if m in self.parts:
                pa = self.parts[m]
                obj["methods"][m]["parts"] = {"n": [int(k) for k in pa["n"]], "accuracy": {
                    eps_key(e): [float(a) for a in pa["accuracy"][e]] for e in self.eps}}
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
        acc, ci, n, spi, parts = {}, {}, {}, {}, {}
        for m, v in obj["methods"].items():
            if "parts" in v:
                parts[m] = {"n": list(v["parts"]["n"]),
                            "accuracy": {float(k): list(a) for k, a in v["parts"]["accuracy"].items()}}
            acc[m] = {float(k): float(a) for k, a in v["accuracy"].items()}
            ci[m] = {float(k): (float(c[0]), float(c[1])) for k, c in v["ci95"].items()}
            n[m] = int(v.get("n", obj["n_test"]))
            spi[m] = float(v["seconds_per_image"])
        timing = dict(obj.get("runtime", {}))
        timing.setdefault("device", obj["device"])
        return cls(methods, eps, acc, ci, n, spi, threat_model=obj["threat_model"],
                   attack=str(obj.get("extra", {}).get("attack", "fgsm")), n_test=int(obj["n_test"]), timing=timing,
                   parts=parts)

    def table(self, eps=None, digits: int = 1) -> str:
        """A markdown table: one row per method, 'acc% [lo, hi]' per eps, n and seconds per image."""
        eps = self.eps if eps is None else [match_eps(e, self.eps) for e in eps]
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


def match_eps(eps, grid) -> float:
    e = check_eps(eps, "eps")
    for g in grid:
        if abs(g - e) <= 1e-6:
            return g
    raise ValueError(f"eps: {e} is not in the evaluated grid {[round(g, 4) for g in grid]}")


def subset_results(res: Results, methods=None, eps=None) -> Results:
    """The same measurements restricted to some methods and eps (each eps must be in the evaluated grid);
    no examples. For putting evaluations of the same images side by side (``join_results``)."""
    if not isinstance(res, Results):
        raise TypeError(f"res: expected an egan_lib.eval.results.Results, got {type(res).__name__}")
    methods = list(res.methods) if methods is None else list(methods)
    unknown = [m for m in methods if m not in res.methods]
    if unknown:
        raise ValueError(f"methods: {unknown} not evaluated; evaluated: {list(res.methods)}")
    eps = list(res.eps) if eps is None else [match_eps(e, res.eps) for e in eps]

    def pick(d):
        return {m: {e: d[m][e] for e in eps if e in d[m]} for m in methods if m in d}

    parts = {m: {"n": list(res.parts[m]["n"]), "accuracy": {e: list(res.parts[m]["accuracy"][e]) for e in eps}}
             for m in methods if m in res.parts}
    timing = {k: v for k, v in res.timing.items() if k != "per_method"}
    if "per_method" in res.timing:
        timing["per_method"] = {m: res.timing["per_method"][m] for m in methods if m in res.timing["per_method"]}
    return Results(methods=methods, eps=eps, accuracy=pick(res.accuracy), ci95=pick(res.ci95),
                   n={m: res.n[m] for m in methods}, seconds_per_image={m: res.seconds_per_image[m] for m in methods},
                   correct=pick(res.correct), predictions=pick(res.predictions), timing=timing,
                   threat_model=res.threat_model, attack=res.attack, n_test=max(res.n[m] for m in methods),
                   parts=parts)


def join_results(*results: Results) -> Results:
    """One Results with the methods of several, which must share the eps grid, threat model and attack; a
    method may appear only once; no examples. That they were evaluated on the same images is the caller's
    to ensure (``egan_lib.eval.reference.hybrid_evaluation`` checks it)."""
    if not results:
        raise ValueError("join_results: nothing to join")
    for r in results:
        if not isinstance(r, Results):
            raise TypeError(f"join_results: expected Results, got {type(r).__name__}")
    first = results[0]
    grid = [round(e, 6) for e in first.eps]
    methods = []
    for r in results:
        if [round(e, 6) for e in r.eps] != grid:
            raise ValueError(f"join_results: eps grids differ ({first.eps} and {r.eps}); use subset_results first")
        if (r.threat_model, r.attack) != (first.threat_model, first.attack):
            raise ValueError(f"join_results: threat models differ ({first.threat_model}/{first.attack} and "
                             f"{r.threat_model}/{r.attack})")
        dup = [m for m in r.methods if m in methods]
        if dup:
            raise ValueError(f"join_results: {dup} appear in more than one Results")
        methods += list(r.methods)
    out = subset_results(first)
    for r in results[1:]:
        r = subset_results(r)
        for attr in ("accuracy", "ci95", "n", "seconds_per_image", "correct", "predictions", "parts"):
            getattr(out, attr).update(getattr(r, attr))
        out.timing.setdefault("per_method", {}).update(r.timing.get("per_method", {}))
    out.methods = methods
    out.n_test = max(out.n.values())
    return out


def to_method_entry(result: dict, seconds_per_image: float) -> dict:
    """One method's entry of the results JSON: {"accuracy": {"0.30": ...}, "ci95": {...},
    "seconds_per_image": s, "n": n} (eps keys with two decimals; the threat model goes on the file)."""
    if not isinstance(result, dict) or not {"accuracy", "ci95", "n"} <= set(result):
        raise ValueError("result: expected a dict with 'accuracy', 'ci95' and 'n' (from whitebox_accuracy, "
                         "oblivious_pgd or on_manifold_attack)")
    s = check_positive_float(seconds_per_image, "seconds_per_image")
    return {"accuracy": {eps_key(e): float(a) for e, a in sorted(result["accuracy"].items())},
            "ci95": {eps_key(e): [float(v) for v in c] for e, c in sorted(result["ci95"].items())},
            "seconds_per_image": s, "n": int(result["n"])}


def combine_eps(*results) -> dict:
    """Merge single-eps results (e.g. :func:`on_manifold_attack` at several eps) into one result."""
    if not results:
        raise ValueError("combine_eps: nothing to combine")
    first = results[0]
    for r in results:
        if r.get("threat_model") != first.get("threat_model") or r.get("n") != first.get("n"):
            raise ValueError("combine_eps: results must share threat_model and n, got "
                             f"{[(q.get('threat_model'), q.get('n')) for q in results]}")
    acc, ci = {}, {}
    for r in results:
        acc.update(r["accuracy"])
        ci.update(r["ci95"])
    return {"threat_model": first["threat_model"], "accuracy": dict(sorted(acc.items())),
            "ci95": dict(sorted(ci.items())), "n": first["n"]}


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
        validate_one_result(o, f" (entry {i})")
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


def git_commit(short: bool = True, cwd=None, timeout: float = 5.0) -> str:
    """The commit that produced a result: the short hash of the project checkout's HEAD, with "-dirty"
    when the library or the chapter sources (``egan_lib/``, ``notebooks/``) differ from it; "unknown"
    without git (no checkout, timeout). The pipeline computes it once per run and hands it to every
    chapter in ``$EGAN_GIT_COMMIT``, so a results file and the notebook stamps of one run agree."""
    env_commit = os.environ.get(GIT_COMMIT_ENV, "").strip()
    if env_commit:
        return env_commit
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parent.parent.parent
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env)
    try:
        r = git("rev-parse", "--short" if short else "--verify", "HEAD")
        out = r.stdout.strip()
        if r.returncode != 0 or not re.fullmatch(r"[0-9a-f]{4,64}", out):
            return "unknown"
        st = git("status", "--porcelain", "--untracked-files=no", "--", "egan_lib", "notebooks")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out + ("-dirty" if st.returncode == 0 and st.stdout.strip() else "")
