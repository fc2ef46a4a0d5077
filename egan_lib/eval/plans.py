"""The campaigns' plans: which attacks run on which defenses at which eps, on how many images, as
:class:`Job` blocks built from a profile. ``plan`` is chapter 07's, ``robust_plan`` chapter 08's;
``egan_lib.eval.campaign`` runs them (``run_plan``) and stores every piece."""
from __future__ import annotations

from dataclasses import dataclass

from ..attack_spec import arithmetic, parse_attack, with_arithmetic

@dataclass(frozen=True)
class Job:
    """One block of chapter 07's campaign: these attacks on these defenses at these eps, on the first n
    images; ``attacker``: (L, R) of the Defense-GAN surrogate the attacker differentiates through."""
    name: str
    defenses: tuple
    attacks: tuple
    eps: tuple
    n: int
    attacker: tuple | None = None
    batch: int | None = None       # images per attack batch (default: the profile's campaign_batch)
    chunk: int | None = None       # images per stored part of a piece (None: one file per piece)
    cascade: bool = False          # each attack only on the images the attacks before it failed on


def _suffix(spec: str) -> str:
    a = parse_attack(spec)
    ar = arithmetic(a)
    return ("" if ar == "fp32" else ":" + ar) + (f":m{a.kwargs['confidence']:g}" if "confidence" in a.kwargs else "")


def steps_curve_specs(profile) -> dict:
    """{steps: spec} of the convergence curve (PGD-CE, 1 restart, at ``steps_curve_eps``). A point whose
    step count equals the restarts curve's attack (``restarts_attack``, run at ``steps_curve_eps`` too) is
    that attack's first restart (the same run, the deployed verdict after restart 1 recorded in
    ``correct_after_restart``), so it is not run again: its spec is the restarts attack's."""
    r = parse_attack(profile.restarts_attack)
    reuse = r.kwargs.get("attack") == "pgd" and r.kwargs.get("loss") == "ce" and \
        any(abs(e - profile.steps_curve_eps) < 1e-9 for e in profile.restarts_eps)
    suffix = _suffix(profile.restarts_attack)
    return {k: profile.restarts_attack if reuse and r.kwargs["steps"] == k else f"pgd:ce:{k}x1{suffix}"
            for k in profile.steps_curve}


def plan(profile) -> list:
    """The jobs chapter 07 shows, from the profile: the undefended C and every defense of
    ``campaign_defenses`` under ``campaign_attacks``; PixelDefend under ``pixeldefend_attacks`` (BPDA) on
    ``pixeldefend_n`` images; the restarts curve (``restarts_attack``) and AutoAttack through every campaign
    defense, the steps curve through EGAN; Defense-GAN under
    ``dgan_attacks`` (BPDA, EOT over its random restarts) through the surrogate ``dgan_attacker``; the
    on-manifold search."""
    p = profile
    curve = tuple(sp for sp in steps_curve_specs(p).values() if sp != p.restarts_attack)
    defs = tuple(d for d in p.campaign_defenses if d != "Original")
    jobs = [Job("main", ("Original",) + defs, tuple(p.campaign_attacks), tuple(p.campaign_eps), p.campaign_n),
            Job("pixeldefend", ("PixelDefend",), tuple(p.pixeldefend_attacks), tuple(p.campaign_eps), p.pixeldefend_n,
                batch=p.eval_batch)]
    if p.restarts_eps:
        jobs.append(Job("restarts", defs, (p.restarts_attack,), tuple(p.restarts_eps), p.campaign_n))
    if curve:
        jobs.append(Job("steps", ("EGAN",), curve, (p.steps_curve_eps,), p.campaign_n))
    if p.autoattack_eps:
        jobs.append(Job("autoattack", defs, (p.autoattack,), tuple(p.autoattack_eps), p.campaign_n))
    jobs.append(Job("dgan", ("Defense-GAN",), tuple(p.dgan_attacks), tuple(p.dgan_eps), p.dgan_n, tuple(p.dgan_attacker)))
    jobs.append(Job("onmanifold", ("EGAN",), (f"onmanifold:{p.onmanifold_steps}x{p.onmanifold_restarts}",),
                    tuple(e for e in p.campaign_eps if e < 0.5), p.campaign_n))
    return jobs


def robust_attacks(profile) -> tuple:
    """Chapter 08's cascade, in order: chapter 07's restarts attack (on every image: its restart curve is
    the convergence check), the attacks of ``campaign_attacks`` that it does not already contain (PGD-CE
    with fewer restarts is its first restarts), the latent-path attack, then AutoAttack (the costliest,
    on the fewest images) when it runs at every eps of the evaluation."""
    p = profile

    def but_restarts(spec):
        return {k: v for k, v in parse_attack(spec).kwargs.items() if k != "restarts"}
    first = [p.restarts_attack] + [sp for sp in p.campaign_attacks if but_restarts(sp) != but_restarts(p.restarts_attack)]
    aa = (p.autoattack,) if set(p.robust_autoattack_eps) == set(p.robust_eval_eps) else ()
    return tuple(robust_spec(p, sp) for sp in tuple(first) + (p.robust_latent_attack,) + aa)


def robust_spec(profile, spec: str) -> str:
    """``spec`` in chapter 08's arithmetic (``robust_attack_arithmetic``; "": as it is)."""
    ar = profile.robust_attack_arithmetic
    return with_arithmetic(spec, ar) if ar else spec


def robust_plan(profile) -> list:
    """The jobs chapter 08 shows: the robust variants (``robust_defenses``) under the cascade of
    ``robust_attacks`` at ``robust_eval_eps`` (each attack on the images the ones before it left; stored
    ``robust_eval_chunk`` images at a time), AutoAttack at ``robust_autoattack_eps`` on every image when
    those differ from the evaluation's eps, and the latent-path attack (``robust_latent_attack``) through
    the paper's EGAN (chapter 07 ran the rest on it), on the first ``campaign_n`` images; every spec in the
    arithmetic ``robust_attack_arithmetic`` (:func:`robust_spec`)."""
    p = profile
    defs, eps, k = tuple(p.robust_defenses), tuple(p.robust_eval_eps), p.robust_eval_chunk
    jobs = [Job("robust", defs, robust_attacks(p), eps, p.campaign_n, chunk=k, cascade=True)]
    aa = robust_spec(p, p.autoattack)
    if p.robust_autoattack_eps and aa not in jobs[0].attacks:
        jobs.append(Job("robust-autoattack", defs, (aa,), tuple(p.robust_autoattack_eps), p.campaign_n, chunk=k))
    jobs.append(Job("robust-latent-egan", ("EGAN",), (robust_spec(p, p.robust_latent_attack),), eps, p.campaign_n,
                    chunk=k))
    return jobs


def restrict_attacks(job, only_attacks) -> list:
    """``job``'s attacks restricted to the specs ``only_attacks`` (None: all); in a cascade, a prefix."""
    if only_attacks is None:
        return list(job.attacks)
    keep = [a for a in job.attacks if a in only_attacks]
    if job.cascade and keep != list(job.attacks[:len(keep)]):
        raise ValueError(f"only_attacks: the cascade of job {job.name!r} runs {list(job.attacks)} in this order; "
                         f"restrict it to its first attacks, got {keep}")
    return keep


PLANS = {7: plan, 8: robust_plan}
