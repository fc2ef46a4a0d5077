"""How a long campaign plan advances on a slow machine: part-major order and what is done so far.

Chapter 08's pieces are stored 100 images at a time (``egan_lib.eval.parts``). :func:`run_plan_by_part`
finishes every attack of a plan on the first part before it starts the next, so that each finished part
already gives the final per-image worst case on the images done so far; :func:`progress` reads, without
computing anything, how many images that is for each defense and eps, and the worst case on them.

    python -m egan_lib.eval.campaign --profile cpu --plan robust --chapter 8 --eps 0.3 --by-part
    python -m egan_lib.eval.campaign --profile cpu --plan --chapter 8 --progress
"""
from __future__ import annotations

from . import campaign
from .._validate import check_positive_int
from .parts import bounds
from .plans import PLANS
from .stats import accuracy_summary
from ..attack_spec import parse_attack


def part_prefixes(ws, chapter: int = 7, jobs=None) -> list:
    """The image counts at which :func:`run_plan_by_part` stops: the end of every stored part of the
    chosen jobs of ``chapter``'s plan (a job stored in one file contributes its n only)."""
    if chapter not in PLANS:
        raise ValueError(f"chapter: expected one of {sorted(PLANS)}, got {chapter!r}")
    ends = set()
    for j in PLANS[chapter](ws.profile):
        if jobs is None or j.name in jobs:
            n = min(j.n, ws.profile.n_test)
            ends.update(hi for _, hi in bounds(n, j.chunk or n))
    return sorted(ends)


def run_plan_by_part(ws, results_dir, *, log=print, **kw) -> dict:
    """``campaign.run_plan`` part-major: every attack of the plan (a cascade to its last attack) on the first stored
    part of images, then on the first two parts, and so on up to the plan's n (``run_plan(first_n=...)`` at
    each :func:`part_prefixes`). The parts computed are exactly those a plain ``campaign.run_plan`` stores and
    reuses (same images, seed and cascade mask), so the order changes only *when* each number exists: after
    each part, the per-image worst case over *all* the attacks is final on the images done so far, instead
    of the first attack alone on all of them. The pieces for the intermediate n are overwritten by the
    next step; the last step stores the plan's own pieces. Returns the last step's results."""
    res = {}
    for k in part_prefixes(ws, kw.get("chapter", 7), kw.get("jobs")):
        log(f"[campaign] the plan on the first {k} images")
        res = campaign.run_plan(ws, results_dir, first_n=k, log=log, **kw)
    return res


def progress(ws, results_dir, *, chapter: int = 8, jobs=None, only_eps=None, only_defenses=None) -> list:
    """How far a plan is, reading only what is stored: one row per (job, defense, eps) with ``n_done``, the
    largest :func:`part_prefixes` count on which *every* attack of the job is stored (a cascade's last
    attack included), ``n`` the plan's, and ``worst`` the per-image worst case over the job's attacks on
    those first ``n_done`` images (None when not even the first part is complete)."""
    plan_jobs = {j.name: j for j in PLANS[chapter](ws.profile) if jobs is None or j.name in jobs}
    n_test = ws.profile.n_test
    rows = {}
    for j in plan_jobs.values():
        for d in j.defenses:
            for e in j.eps:
                if (only_defenses is None or d in only_defenses) and \
                        (only_eps is None or any(abs(e - o) < 1e-9 for o in only_eps)):
                    rows[(j.name, d, e)] = {"job": j.name, "defense": d, "eps": e, "n": min(j.n, n_test),
                                            "n_done": 0, "worst": None}
    for k in part_prefixes(ws, chapter, list(plan_jobs)):
        res = campaign.run_plan(ws, results_dir, jobs=list(plan_jobs), only_eps=only_eps, only_defenses=only_defenses,
                       chapter=chapter, first_n=k, compute_missing=False, missing=[], log=lambda m: None)
        for jname, by_def in res.items():
            labels = [parse_attack(a).label for a in plan_jobs[jname].attacks]
            for d, per_attack in by_def.items():
                for (jn, dn, e), row in rows.items():
                    if jn != jname or dn != d or k > row["n"]:
                        continue
                    if all(e in per_attack.get(lab, {}) for lab in labels):
                        row["n_done"] = k
                        row["worst"] = campaign.summary({d: {lab: per_attack[lab] for lab in labels}})[d]["worst"]
    return list(rows.values())


def unfinished_markdown(rows: list, profile_name: str) -> str:
    """What a chapter says above an evaluation that is not complete ("" when every row of :func:`progress`
    is done): the images and eps its numbers are on (:func:`ready`), the table of how far each piece is,
    and the command that computes the rest."""
    if all(r["n_done"] == r["n"] for r in rows):
        return ""
    n, eps = ready(rows)
    plan_eps = sorted({round(float(r["eps"]), 6) for r in rows})
    return (f"**The evaluation is not complete yet.** Every number of this chapter's evaluation is on the first {n} "
            f"test images at eps {', '.join(f'{e:g}' for e in eps) or '-'} (all that is stored for every attack, "
            f"variant and eps); the plan is {max(r['n'] for r in rows)} images at eps "
            f"{', '.join(f'{e:g}' for e in plan_eps)}. How far each piece is:\n\n{markdown(rows)}\n\nThe rest: "
            f"`python -m egan_lib.eval.campaign --profile {profile_name} --plan --chapter 8 --by-part`.")


def markdown(rows: list) -> str:
    """:func:`progress` as a table: the worst case so far with its n and 95% Wilson interval."""
    out = ["| job | defense | eps | images done | worst case on them (%) |", "|---|---|---|---|---|"]
    for r in rows:
        w = r["worst"]
        cell = "-" if w is None else (f"{100 * w['accuracy'][r['eps']]:.1f} [{100 * w['ci95'][r['eps']][0]:.1f}, "
                                      f"{100 * w['ci95'][r['eps']][1]:.1f}]")
        out.append(f"| {r['job']} | {r['defense']} | {r['eps']:.2f} | {r['n_done']} of {r['n']} | {cell} |")
    return "\n".join(out)


def ready(rows: list) -> tuple[int, list]:
    """(n, eps): from :func:`progress` rows, the largest image count on which every job and defense of the
    plan is complete at some eps, and those eps (sorted); (0, []) when no eps is complete anywhere. A
    chapter shows exactly that much: the same first n images everywhere, so that paired comparisons hold."""
    if not isinstance(rows, list) or not rows:
        raise ValueError("rows: expected plan_progress.progress()'s non-empty list of rows")
    n_at = {}
    for r in rows:
        e = round(float(r["eps"]), 6)
        n_at[e] = min(n_at.get(e, r["n_done"]), r["n_done"])
    best = max(n_at.values())
    return (best, sorted(e for e, k in n_at.items() if k == best)) if best > 0 else (0, [])


_PER_IMAGE = ("correct", "attacked")


def first_images(res: dict, n: int) -> dict:
    """A campaign result ({job: {defense: {attack: {eps: result}}}}, as ``campaign.run_plan`` returns) on its
    first ``n`` images only: per-image outcomes sliced, accuracy, interval and n recomputed; a result on at
    most n images is kept as it is. Counts over all images that cannot be sliced (``attacker_disagrees``)
    are dropped. The on-manifold job (another layout) is left out."""
    n = check_positive_int(n, "n")
    out = {}
    for job, by_def in res.items():
        if job == "onmanifold":
            continue
        out[job] = {d: {a: {e: _first(r, n) for e, r in by_eps.items()} for a, by_eps in per_attack.items()}
                    for d, per_attack in by_def.items()}
    return out


def _first(r: dict, n: int) -> dict:
    if r["n"] <= n:
        return r
    keep = {k: v for k, v in r.items() if k not in ("threat_model", "accuracy", "ci95", "n", "attacker_disagrees",
                                                   "correct_after_restart", *_PER_IMAGE)}
    out = accuracy_summary({e: c[:n] for e, c in r["correct"].items()}, r["threat_model"], **keep)
    out["correct"] = {e: c[:n] for e, c in r["correct"].items()}
    if "attacked" in r:
        out["attacked"] = {e: m[:n] for e, m in r["attacked"].items()}
    if "correct_after_restart" in r:
        out["correct_after_restart"] = {e: c[:, :n] for e, c in r["correct_after_restart"].items()}
    return out
