"""A resumable attack campaign: every (defense, attack, eps) is one stored piece, so a long evaluation
(hundreds of PGD steps, restarts, AutoAttack, BPDA + EOT, on hundreds of images) can run in the
background for hours, stop at any moment, and resume where it stopped.

Each piece is stored by ``egan_lib.eval.store.load_or_evaluate`` under
``<out>/<defense>/<attack label>/eps<eps>.pt`` with its settings (the images' digest, the classifier's
and the defense's weights, the attack's parameters): it is reused when they match and recomputed when
anything changed. ``summary`` then gives, per defense and eps, each attack alone and the per-image
worst case over all of them, with n, Wilson intervals and each attack's cost per image.

Attack specs (``parse_attack``): ``pgd:ce:100x5`` (PGD, cross-entropy, 100 steps, 5 restarts),
``pgd:cw:100x5`` (Carlini-Wagner margin), ``autoattack`` (standard AutoAttack), ``eot4:pgd:ce:100x1``
(PGD on the expectation over 4 draws of a randomised defense, e.g. Defense-GAN's restarts); a ``:bf16``
suffix computes the attacker's gradients under bf16 autocast (``pgd:ce:100x5:bf16``).

    python -m egan_lib.eval.campaign --profile cpu --out artifacts/campaign --defenses EGAN DnCNN \\
        --attacks pgd:ce:100x5 pgd:cw:100x5 autoattack --eps 0.1 0.2 0.3 --n 500
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .._validate import check_eps_list, check_images, check_labels, check_positive_int
from .adaptive import whitebox_accuracy, worst_case
from .store import load_or_evaluate, protocol_settings

_ATTACK_RE = re.compile(r"^(?:eot(?P<eot>\d+):)?(?:(?P<aa>autoattack)|pgd:(?P<loss>ce|cw):(?P<steps>\d+)x(?P<restarts>\d+))"
                        r"(?P<bf16>:bf16)?$")


@dataclass(frozen=True)
class Attack:
    """One attack of a campaign: its label (the spec) and the keyword arguments of ``whitebox_accuracy``."""
    label: str
    kwargs: dict

    def settings(self) -> dict:
        return {"label": self.label, **self.kwargs}


def parse_attack(spec: str) -> Attack:
    """``pgd:ce:100x5``, ``pgd:cw:100x5``, ``autoattack``, optionally prefixed ``eotK:`` (K draws) and
    suffixed ``:bf16`` (the attacker's gradients under bf16 autocast)."""
    m = _ATTACK_RE.match(spec.strip()) if isinstance(spec, str) else None
    if not m:
        raise ValueError(f"attack spec {spec!r}: expected pgd:ce:STEPSxRESTARTS, pgd:cw:STEPSxRESTARTS or "
                         "autoattack, optionally prefixed eotK:")
    kw = {"eot_samples": int(m["eot"] or 1)}
    if m["bf16"]:
        kw["attack_bf16"] = True
    if m["aa"]:
        kw["attack"] = "autoattack"
    else:
        kw.update(attack="pgd", loss=m["loss"], steps=check_positive_int(int(m["steps"]), "steps"),
                  restarts=check_positive_int(int(m["restarts"]), "restarts"))
    if kw["eot_samples"] < 1:
        raise ValueError(f"attack spec {spec!r}: eot needs at least 1 sample")
    return Attack(spec.strip(), kw)


def piece_path(out: Path, defense_name: str, attack: Attack, eps: float) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", attack.label)
    return Path(out) / re.sub(r"[^A-Za-z0-9_.-]+", "_", defense_name) / safe / f"eps{eps:.2f}.pt"


def run(classifier, defenses: dict, x: torch.Tensor, y: torch.Tensor, attacks, eps_values, out, *,
        seed: int = 0, batch_size: int = 256, reevaluate: bool = False, log=print) -> dict:
    """Run (or reuse) every piece; returns {defense: {attack label: {eps: result}}}. A result holds the
    per-image outcomes ``correct``, the accuracy with its interval, and ``seconds_per_image``."""
    x = check_images(x)
    y = check_labels(y, n=x.shape[0])
    eps_values = check_eps_list(eps_values)
    attacks = [a if isinstance(a, Attack) else parse_attack(a) for a in attacks]
    if not isinstance(defenses, dict) or not defenses:
        raise ValueError("defenses: expected a non-empty {name: Defense} dict")
    results: dict = {}
    for name, d in defenses.items():
        for a in attacks:
            if a.kwargs["eot_samples"] > 1 and not callable(getattr(d, "reseeded", None)):
                continue                                  # EOT is only for randomised defenses
            for e in eps_values:
                settings = protocol_settings(classifier, [d], x, y, [e], attack=a.settings(), seed=seed,
                                             batch_size=batch_size)

                def compute(d=d, a=a, e=e):
                    t0 = time.perf_counter()
                    r = whitebox_accuracy(d, classifier, x, y, [e], seed=seed, batch_size=batch_size, **a.kwargs)
                    r["seconds_per_image"] = (time.perf_counter() - t0) / len(y)
                    return r
                r, info = load_or_evaluate(piece_path(out, name, a, e), settings, compute, reevaluate=reevaluate,
                                           to_state=lambda r: r, from_state=lambda s: s, log=log)
                log(f"[campaign] {name} {a.label} eps {e:.2f}: {100 * r['accuracy'][e]:.1f}% (n = {r['n']}, "
                    f"{1000 * r['seconds_per_image']:.0f} ms/image, {info['status']})")
                results.setdefault(name, {}).setdefault(a.label, {})[e] = r
    return results


def summary(results: dict) -> dict:
    """{defense: {"worst": worst-case result, "per_attack": {label: {eps: acc}}, "cost": {label: s/image}}}."""
    out = {}
    for name, per_attack in results.items():
        merged = {}
        for label, by_eps in per_attack.items():
            correct = {e: r["correct"][e] for e, r in by_eps.items()}
            merged[label] = {"correct": correct}
        w = worst_case(merged)
        cost = {label: max(r["seconds_per_image"] for r in by_eps.values()) for label, by_eps in per_attack.items()}
        out[name] = {"worst": w, "per_attack": w["per_attack"], "cost": cost}
    return out


def markdown(summ: dict) -> str:
    """One row per defense and eps: each attack alone, the worst case (n, 95% interval), the decisive attack."""
    rows = ["| defense | eps | worst case (%) | n | each attack alone (%) | broke images alone |", "|---|---|---|---|---|---|"]
    for name, s in summ.items():
        w = s["worst"]
        for e in sorted(w["accuracy"]):
            lo, hi = w["ci95"][e]
            alone = ", ".join(f"{lab} {100 * acc[e]:.1f}" for lab, acc in s["per_attack"].items())
            dec = ", ".join(f"{lab} {k}" for lab, k in w["decisive"][e].items() if k) or "-"
            rows.append(f"| {name} | {e:.2f} | {100 * w['accuracy'][e]:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | "
                        f"{w['n']} | {alone} | {dec} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--out", default="artifacts/campaign")
    ap.add_argument("--defenses", nargs="+", default=["EGAN"])
    ap.add_argument("--attacks", nargs="+", default=["pgd:ce:100x5", "pgd:cw:100x5", "autoattack"])
    ap.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--n", type=int, default=500, help="the first n images of the profile's test subset")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=64, help="images per attack batch (64: fastest on 2 CPU cores)")
    ap.add_argument("--reevaluate", action="store_true")
    a = ap.parse_args(argv)
    for spec in a.attacks:
        try:
            parse_attack(spec)
        except ValueError as e:
            ap.error(str(e))
    from .. import setup
    from ..defenses import get_defenses
    ws = setup(a.profile, a.seed, a.device, None, a.artifacts, progress=False, threads=a.threads)
    C, _ = ws.classifier()
    x, y = ws.test_set()
    n = min(check_positive_int(a.n, "n"), len(y))
    res = run(C, get_defenses(ws, a.defenses), x[:n], y[:n], a.attacks, sorted(a.eps), a.out, seed=a.seed,
              batch_size=check_positive_int(a.batch, "batch"), reevaluate=a.reevaluate)
    print(markdown(summary(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
