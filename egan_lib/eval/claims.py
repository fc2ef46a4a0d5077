"""The paper's claims, checked against our numbers: "the paper says / we measured / verdict".

Each check reads a results object (the results schema, ``egan_lib.eval.schema``) and returns a
row whose verdict follows from the measured accuracies and their 95% Wilson intervals, whichever
way they fall. "Significantly" always means: the two 95% intervals do not overlap (a conservative
test; overlapping intervals are reported as a tie).
"""
from __future__ import annotations

import torch

from .schema import validate_one_result

SUPPORTED, PARTLY, NOT_SUPPORTED, CONTRADICTED = "supported", "partly supported", "not supported", "contradicted"
NOT_TESTABLE = "not testable"
#: The accuracy of always giving the same answer on a class-balanced subset of 10 classes; chapters pass
#: the share of the evaluated subset's largest class instead when it is not balanced.
CHANCE = 0.10


def _above_chance(m: dict, key: str, chance: float) -> bool:
    """Significantly above chance: the 95% interval's lower end lies above it."""
    return m["ci95"][key][0] > chance


def _testable(obj: dict, key: str, chance: float) -> bool:
    """An eps where at least one method is significantly above chance: a ranking there means something
    (where every method is at chance, a tie is no support and a 'win' is noise)."""
    return any(_above_chance(v, key, chance) for v in obj["methods"].values())


def _method(obj: dict, name: str) -> dict:
    if not isinstance(obj, dict) or "methods" not in obj:
        raise ValueError("results: expected a results object with a 'methods' key (see egan_lib.eval.schema)")
    validate_one_result(obj)      # accuracies in [0, 1], intervals, eps keys: no verdict on a broken file
    if name not in obj["methods"]:
        raise ValueError(f"results: method {name!r} missing; have {sorted(obj['methods'])}")
    return obj["methods"][name]


def _eps_keys(obj: dict) -> list[str]:
    first = next(iter(obj["methods"].values()))
    return sorted(first["accuracy"], key=float)


def _pct(a: float) -> str:
    return f"{100 * a:.1f}%"


def _acc_ci(obj, name, key) -> str:
    m = _method(obj, name)
    lo, hi = m["ci95"][key]
    return f"{_pct(m['accuracy'][key])} [{_pct(lo)}, {_pct(hi)}]"


def claim_clean_accuracy(obj: dict, target: float = 0.99) -> dict:
    """The classifier reaches 99% clean accuracy (method "Original" at eps 0)."""
    m = _method(obj, "Original")
    key = _eps_keys(obj)[0]
    if float(key) != 0.0:
        raise ValueError("results: the eps grid must start at 0 for the clean-accuracy claim")
    acc, (lo, hi) = m["accuracy"][key], m["ci95"][key]
    verdict = SUPPORTED if hi >= target else NOT_SUPPORTED
    return {"claim": "The classifier reaches 99% clean accuracy",
            "paper": "99%", "measured": f"{_acc_ci(obj, 'Original', key)} (n = {m.get('n', obj['n_test'])})",
            "verdict": verdict}


def claim_egan_best_above(obj: dict, threshold: float = 0.25, name: str = "EGAN", chance: float = CHANCE) -> dict:
    """EGAN is the best method for eps > 0.25: at which eps is another method significantly better?
    Only the eps where some method is significantly above chance count; if none, the claim is not testable."""
    egan = _method(obj, name)
    all_keys = [k for k in _eps_keys(obj) if float(k) > threshold + 1e-9]
    if not all_keys:
        raise ValueError(f"results: no eps above {threshold} in the grid")
    keys = [k for k in all_keys if _testable(obj, k, chance)]
    untestable = [k for k in all_keys if k not in keys]
    if not keys:
        return {"claim": f"EGAN is the best method for eps > {threshold}", "paper": "Fig. 4: EGAN on top for eps > 0.25",
                "measured": f"every method at chance ({100 * chance:.0f}%) at eps {', '.join(all_keys)}",
                "verdict": NOT_TESTABLE}
    beaten, best_or_tied = [], []
    for k in keys:
        others = {n: v for n, v in obj["methods"].items() if n != name}
        better = [n for n, v in others.items() if v["ci95"][k][0] > egan["ci95"][k][1]]
        (beaten if better else best_or_tied).append((k, better))
    if not beaten:
        verdict = SUPPORTED
    elif not best_or_tied:
        verdict = CONTRADICTED
    else:
        verdict = PARTLY
    detail = "; ".join(f"eps {k}: {', '.join(b)} better" for k, b in beaten) or "no method significantly better"
    skipped = (f"; not testable at eps {', '.join(untestable)} (every method at chance, {100 * chance:.0f}%)"
               if untestable else "")
    return {"claim": f"EGAN is the best method for eps > {threshold}",
            "paper": "Fig. 4: EGAN on top for eps > 0.25",
            "measured": f"best or tied at {len(best_or_tied)} of {len(keys)} testable eps values; {detail}{skipped}",
            "verdict": verdict}


def claim_faster_than_defensegan(obj: dict, eps: float = 0.5, min_speedup: float = 10.0, chance: float = CHANCE) -> dict:
    """EGAN is much faster than Defense-GAN at similar accuracy (at eps = 0.5). Two accuracies that are
    both at chance are not 'similar accuracy' in any useful sense: then only the speed is judged."""
    key = f"{eps:.2f}"
    e, d = _method(obj, "EGAN"), _method(obj, "Defense-GAN")
    speedup = d["seconds_per_image"] / max(e["seconds_per_image"], 1e-12)
    both_at_chance = not (_above_chance(e, key, chance) or _above_chance(d, key, chance))
    overlap = not both_at_chance and not (e["ci95"][key][0] > d["ci95"][key][1] or d["ci95"][key][0] > e["ci95"][key][1])
    egan_better = e["ci95"][key][0] > d["ci95"][key][1]
    fast = speedup >= min_speedup
    if fast and (overlap or egan_better):
        verdict = SUPPORTED
    elif fast or overlap:
        verdict = PARTLY
    else:
        verdict = NOT_SUPPORTED
    return {"claim": "EGAN is much faster than Defense-GAN at similar accuracy",
            "paper": "Fig. 5 (eps = 0.5)",
            "measured": (f"Defense-GAN / EGAN time = {speedup:.0f}x; accuracy at eps {key}: EGAN {_acc_ci(obj, 'EGAN', key)}, "
                         f"Defense-GAN {_acc_ci(obj, 'Defense-GAN', key)}"
                         + (f" (both at chance, {100 * chance:.0f}%: the accuracy part is not testable)" if both_at_chance else "")),
            "verdict": verdict}


def claim_apegan_fast_but_weak(obj: dict, high_eps: float = 0.5, chance: float = CHANCE) -> dict:
    """APE-GAN is fast but weak at high eps: faster than EGAN, significantly below the best method (at the
    eps where some method is above chance: where all are at chance, being 'weak' distinguishes nothing)."""
    a, e = _method(obj, "APE-GAN"), _method(obj, "EGAN")
    keys = [k for k in _eps_keys(obj) if float(k) >= high_eps - 1e-9 and _testable(obj, k, chance)]
    if not keys:
        return {"claim": "APE-GAN is fast but weak at high eps", "paper": "Fig. 5 and text",
                "measured": (f"APE-GAN {1000 * a['seconds_per_image']:.2f} ms/image vs EGAN {1000 * e['seconds_per_image']:.2f}; "
                             f"every method at chance ({100 * chance:.0f}%) at eps >= {high_eps}"),
                "verdict": NOT_TESTABLE}
    fast = a["seconds_per_image"] <= e["seconds_per_image"]
    weak_at = []
    for k in keys:
        best = max(v["ci95"][k][0] for n, v in obj["methods"].items())
        if a["ci95"][k][1] < best:
            weak_at.append(k)
    weak = len(weak_at) == len(keys)
    verdict = SUPPORTED if fast and weak else (PARTLY if fast or weak_at else NOT_SUPPORTED)
    return {"claim": "APE-GAN is fast but weak at high eps",
            "paper": "Fig. 5 and text",
            "measured": (f"APE-GAN {1000 * a['seconds_per_image']:.2f} ms/image vs EGAN {1000 * e['seconds_per_image']:.2f}; "
                         f"significantly below the best method at {len(weak_at)} of {len(keys)} eps >= {high_eps}"),
            "verdict": verdict}


def background_noise(clean: torch.Tensor, output: torch.Tensor) -> float:
    """Mean absolute value of ``output`` on the pixels where the clean digit is background (exact 0)."""
    if clean.shape != output.shape:
        raise ValueError(f"clean, output: shapes differ ({tuple(clean.shape)} vs {tuple(output.shape)})")
    mask = clean <= 0
    if not bool(mask.any()):
        raise ValueError("clean: no background pixels")
    return float(output[mask].abs().mean())


def claim_noise_free(examples, eps: float = 0.5, methods=("EGAN", "APE-GAN", "Defense-GAN"),
                     threshold: float = 0.05) -> dict:
    """EGAN, APE-GAN and Defense-GAN give nearly noise-free reconstructions: the mean grey level of
    their output on the clean digit's background, at eps, is below ``threshold`` (the attacked image
    itself sits near eps there)."""
    e = examples.nearest_eps(eps)
    levels = {m: background_noise(examples.clean, examples.outputs[m][e]) for m in methods}
    attacked = background_noise(examples.clean, examples.attacked[e])
    clean_ok = [m for m, v in levels.items() if v < threshold]
    verdict = SUPPORTED if len(clean_ok) == len(methods) else (PARTLY if clean_ok else NOT_SUPPORTED)
    return {"claim": "EGAN, APE-GAN and Defense-GAN give nearly noise-free reconstructions",
            "paper": "Fig. 3",
            "measured": (f"background grey level at eps {e:.2f} (attacked: {attacked:.2f}): "
                         + ", ".join(f"{m} {v:.3f}" for m, v in levels.items())
                         + f" (n = {len(examples.labels)} digits; noise-free means < {threshold})"),
            "verdict": verdict}


def claim_reconstructs_at_highest_eps(obj: dict, examples=None, chance: float = CHANCE, name: str = "EGAN") -> dict:
    """The paper's Fig. 2: EGAN reconstructs the digit even at the highest eps. Judged by EGAN's accuracy
    at the largest eps of the grid against chance (and, with the examples, how many of the shown digits
    come back as their class)."""
    keys = _eps_keys(obj)
    k = keys[-1]
    m = _method(obj, name)
    shown = ""
    if examples is not None:
        e = examples.nearest_eps(float(k))
        right = int((examples.preds[name][e] == examples.labels).sum())
        shown = f"; {right} of the {len(examples.labels)} shown digits keep their class"
    verdict = SUPPORTED if _above_chance(m, k, chance) else NOT_SUPPORTED
    return {"claim": "EGAN reconstructs the digit even at the highest eps",
            "paper": "Fig. 2 (eps up to 1)",
            "measured": f"EGAN at eps {k}: {_acc_ci(obj, name, k)} (n = {m.get('n', obj['n_test'])}; chance "
                        f"{100 * chance:.0f}%){shown}",
            "verdict": verdict}


def paper_claims(obj: dict, examples=None, chance: float = CHANCE) -> list[dict]:
    """All rows (the noise row needs the examples kept by ``evaluate``). ``chance``: the accuracy of a
    constant answer on the evaluated subset (its largest class's share)."""
    rows = [claim_clean_accuracy(obj), claim_egan_best_above(obj, chance=chance),
            claim_faster_than_defensegan(obj, chance=chance), claim_apegan_fast_but_weak(obj, chance=chance),
            claim_reconstructs_at_highest_eps(obj, examples, chance=chance)]
    if examples is not None:
        rows.append(claim_noise_free(examples))
    return rows


def claims_markdown(rows: list[dict]) -> str:
    out = ["| claim | the paper says | we measured | verdict |", "|---|---|---|---|"]
    out += [f"| {r['claim']} | {r['paper']} | {r['measured']} | **{r['verdict']}** |" for r in rows]
    return "\n".join(out)
