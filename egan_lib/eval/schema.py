"""The results file's schema, checked in one place (the library and the book's Sphinx extension both
call ``validate_results_json``).

``book/results/<dataset>-<profile>.json``::

    {"dataset", "profile", "device", "n_test", "threat_model", "git_commit",
     "methods": {NAME: {"accuracy": {EPS: float}, "ci95": {EPS: [lo, hi]}, "seconds_per_image": float,
                        "n": int (optional), "settings": {...} (optional),
                        "parts": {"n": [int], "accuracy": {EPS: [float]}} (optional: the accuracy on each
                                  of several disjoint evaluation parts, whose union the row pools)}},
     "runtime": {...} (optional), "extra": {...} (optional)}

with EPS keys written with two decimals ("0.30"). A file may also hold a list of such objects, one per
threat model (``egan_lib.eval.results.merge_results``).
"""
from __future__ import annotations

import json
import math
import numbers
import re

from ..attacks.base import THREAT_MODELS  # noqa: F401  (re-exported: the names a threat_model usually takes)

REQUIRED_KEYS = ("dataset", "profile", "device", "n_test", "threat_model", "git_commit", "methods")
OPTIONAL_KEYS = ("runtime", "extra")
METHOD_REQUIRED_KEYS = ("accuracy", "ci95", "seconds_per_image")
METHOD_OPTIONAL_KEYS = ("n", "settings", "parts")
EPS_KEY_RE = re.compile(r"^[0-9]\.[0-9]{2}$")
#: names used in the book; any other non-empty name is accepted too (say what it means in the chapter)


def _is_num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _check_keys(d: dict, required, optional, at: str, fail) -> None:
    for k in required:
        if k not in d:
            fail(f"{at}missing key {k!r} (required: {list(required)})")
    extra = [k for k in d if k not in required and k not in optional]
    if extra:
        fail(f"{at}unknown key(s) {extra}; allowed: {list(required) + list(optional)}")


def validate_one_result(obj, where: str = "") -> None:
    def fail(msg):
        raise ValueError(f"results{where}: {msg}")

    if not isinstance(obj, dict):
        fail(f"expected a JSON object (dict), got {type(obj).__name__}")
    _check_keys(obj, REQUIRED_KEYS, OPTIONAL_KEYS, "", fail)
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
        _check_keys(m, METHOD_REQUIRED_KEYS, METHOD_OPTIONAL_KEYS, f"{at}: ", fail)
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
        if "settings" in m and not isinstance(m["settings"], dict):
            fail(f"{at}.settings must be an object (what produced this row: weights' sha256, L, R, ...)")
        if "parts" in m:
            pa = m["parts"]
            if not isinstance(pa, dict) or set(pa) != {"n", "accuracy"}:
                fail(f"{at}.parts must be an object {{'n': [int], 'accuracy': {{eps: [float]}}}}")
            ns = pa["n"]
            if not isinstance(ns, list) or len(ns) < 2 or not all(isinstance(v, int) and v >= 1 for v in ns):
                fail(f"{at}.parts.n must list at least two part sizes (integers >= 1), got {ns!r}")
            if "n" in m and sum(ns) != m["n"]:
                fail(f"{at}.parts.n sums to {sum(ns)}, not the row's n = {m['n']}")
            if not isinstance(pa["accuracy"], dict) or set(pa["accuracy"]) != set(accd):
                fail(f"{at}.parts.accuracy must have the row's eps keys {sorted(accd)}")
            for key, v in pa["accuracy"].items():
                if (not isinstance(v, list) or len(v) != len(ns)
                        or not all(_is_num(a) and 0.0 <= a <= 1.0 for a in v)):
                    fail(f"{at}.parts.accuracy[{key!r}] must list {len(ns)} accuracies in [0, 1], got {v!r}")
        if "n" in m:
            k = m["n"]
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_test:
                fail(f"{at}.n must be an integer in [1, n_test = {n_test}], got {k!r}")
    try:
        json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as e:
        fail(f"not JSON-serialisable (strict JSON, no NaN/inf): {e}")


def validate_results_json(obj) -> None:
    """Check a results object (or a list of them, one per threat model) against the schema of this module.
    Raises ValueError naming the first problem; returns None when it is valid."""
    if isinstance(obj, list):
        if not obj:
            raise ValueError("results: empty list; expected at least one results object")
        seen = {}
        for i, o in enumerate(obj):
            validate_one_result(o, f"[{i}]")
            key = (o["dataset"], o["profile"], o["threat_model"])
            if key in seen:
                raise ValueError(f"results[{i}]: threat_model {o['threat_model']!r} for {o['dataset']}/{o['profile']} "
                                 f"already appears at [{seen[key]}]; one entry per threat model")
            seen[key] = i
        return None
    validate_one_result(obj)
    return None
