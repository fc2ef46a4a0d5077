"""Attack specs, the short strings that name an attack of chapter 07's campaign (and of a profile):

    pgd:ce:100x5          PGD on the cross-entropy, 100 steps, 5 restarts
    pgd:cw:100x5          the same on Carlini & Wagner's margin loss
    autoattack            standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square), from torchattacks
    eot4:pgd:ce:100x1     PGD on the expectation over 4 draws of a randomised defense (EOT)
    latent:100x5          the latent-path attack on EGAN-like defenses: PGD on ||E(x + δ) - E(x)||²,
                          100 steps, 5 restarts, the deployed pipeline judging each restart
    ...:bf16              the attacker's fast arithmetic (bf16 autocast, BatchNorm folded, channels_last)
    ...:fold              the same networks in fp32 (BatchNorm folded, channels_last): the fast arithmetic
                          of CPUs without native bf16, where bf16 is emulated and many times slower
    ...:m2                PGD stops an image only once its logit margin exceeds 2 (default 0; 1 under bf16)

No torch here: the profiles check their specs with it when they are made.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_ATTACK_RE = re.compile(r"^(?:eot(?P<eot>\d+):)?(?:(?P<aa>autoattack)|pgd:(?P<loss>ce|cw):(?P<steps>\d+)x(?P<restarts>\d+)"
                        r"|latent:(?P<lsteps>\d+)x(?P<lrestarts>\d+))"
                        r"(?:(?P<bf16>:bf16)|(?P<fold>:fold))?(?::m(?P<margin>\d+(?:\.\d+)?))?$")


@dataclass(frozen=True)
class Attack:
    """One attack of a campaign: its label (the spec) and the keyword arguments of
    ``egan_lib.eval.adaptive.whitebox_accuracy``."""
    label: str
    kwargs: dict

    def settings(self) -> dict:
        return {"label": self.label, **self.kwargs}


def parse_attack(spec: str) -> Attack:
    """Parse an attack spec (see the module docstring); raises ValueError naming the spec."""
    m = _ATTACK_RE.match(spec.strip()) if isinstance(spec, str) else None
    if not m:
        raise ValueError(f"attack spec {spec!r}: expected pgd:ce:STEPSxRESTARTS, pgd:cw:STEPSxRESTARTS, "
                         "latent:STEPSxRESTARTS or autoattack, optionally prefixed eotK: and suffixed :bf16 or :fold, "
                         "and :mMARGIN")
    kw = {"eot_samples": int(m["eot"] or 1)}
    if kw["eot_samples"] < 1:
        raise ValueError(f"attack spec {spec!r}: eot needs at least 1 sample")
    if m["bf16"]:
        kw["attack_bf16"] = True
    if m["fold"]:
        kw["attack_fold"] = True
    if m["aa"]:
        if m["margin"]:
            raise ValueError(f"attack spec {spec!r}: a stopping margin (:m) applies to PGD only")
        kw["attack"] = "autoattack"
    elif m["lsteps"]:
        if m["margin"] or kw["eot_samples"] > 1:
            raise ValueError(f"attack spec {spec!r}: the latent-path attack takes no stopping margin and no EOT")
        steps, restarts = int(m["lsteps"]), int(m["lrestarts"])
        if steps < 1 or restarts < 1:
            raise ValueError(f"attack spec {spec!r}: steps and restarts must be >= 1")
        kw.update(attack="latent", steps=steps, restarts=restarts)
    else:
        steps, restarts = int(m["steps"]), int(m["restarts"])
        if steps < 1 or restarts < 1:
            raise ValueError(f"attack spec {spec!r}: steps and restarts must be >= 1")
        kw.update(attack="pgd", loss=m["loss"], steps=steps, restarts=restarts)
        if m["margin"]:
            kw["confidence"] = float(m["margin"])
    return Attack(spec.strip(), kw)


def is_pgd(attack: Attack) -> bool:
    return attack.kwargs.get("attack") == "pgd"


ARITHMETICS = ("fp32", "fold", "bf16")


def arithmetic(attack: Attack) -> str:
    """How the attacker computes: "bf16" (``:bf16``), "fold" (``:fold``) or "fp32" (the deployed networks)."""
    return "bf16" if attack.kwargs.get("attack_bf16") else "fold" if attack.kwargs.get("attack_fold") else "fp32"


def with_arithmetic(spec: str, arith: str) -> str:
    """``spec`` with its arithmetic suffix replaced by ``arith`` (one of ``ARITHMETICS``; "fp32": none),
    the rest unchanged: ``with_arithmetic("pgd:ce:100x5:bf16", "fold") == "pgd:ce:100x5:fold"``."""
    if arith not in ARITHMETICS:
        raise ValueError(f"arith: expected one of {ARITHMETICS}, got {arith!r}")
    parse_attack(spec)
    m = re.match(r"^(?P<base>.*?)(?::(?:bf16|fold))?(?P<margin>:m\d+(?:\.\d+)?)?$", spec.strip())
    out = m["base"] + ("" if arith == "fp32" else ":" + arith) + (m["margin"] or "")
    parse_attack(out)
    return out
