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
from pathlib import Path

import torch

from .._validate import check_eps_list, check_images, check_labels, check_positive_int
from ..attacks.autoattack import STANDARD as AUTOATTACK_STANDARD
from .adaptive import attack_precision, whitebox_accuracy, worst_case
from .cascade import on_survivors, settings as cascade_settings
from .parts import bounds, merge, part_path
from .store import load_or_evaluate, load_stored, protocol_settings
from ..attack_spec import Attack, parse_attack  # noqa: F401  (re-exported)
from .plans import PLANS, Job, plan, restrict_attacks, robust_attacks, robust_plan, steps_curve_specs  # noqa: F401  (re-exported)

def piece_path(out: Path, defense_name: str, attack: Attack, eps: float) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", attack.label)
    return Path(out) / re.sub(r"[^A-Za-z0-9_.-]+", "_", defense_name) / safe / f"eps{eps:.2f}.pt"


def run(classifier, defenses: dict, x: torch.Tensor, y: torch.Tensor, attacks, eps_values, out, *,
        seed: int = 0, batch_size: int = 256, reevaluate: bool = False, log=print, attackers: dict | None = None,
        compute_missing: bool = True, missing: list | None = None, chunk: int | None = None,
        cascade: bool = False) -> dict:
    """Run (or reuse) every piece; returns {defense: {attack label: {eps: result}}}. A result holds the
    per-image outcomes ``correct``, the accuracy with its interval, and ``seconds_per_image``.

    ``attackers``: {defense name: the defense the attacker differentiates through instead} (a cheaper
    surrogate; see ``whitebox_accuracy``); it is part of the piece's settings. ``compute_missing=False``
    raises FileNotFoundError for a piece that is not stored with these settings (a chapter that must not
    start hours of attacks), or, given a ``missing`` list, appends (defense, attack, eps, path) to it and
    goes on with the stored pieces. ``chunk``: compute each piece as stored parts of that many images
    (``egan_lib.eval.parts``), so a long piece resumes at its first missing part; part of the settings.
    ``cascade``: each attack runs, per defense and eps, only on the images the attacks before it (in
    ``attacks``' order) failed on (``egan_lib.eval.cascade``): the same worst case, at a fraction of the cost."""
    x = check_images(x)
    y = check_labels(y, n=x.shape[0])
    eps_values = check_eps_list(eps_values)
    attacks = [a if isinstance(a, Attack) else parse_attack(a) for a in attacks]
    if not isinstance(defenses, dict) or not defenses:
        raise ValueError("defenses: expected a non-empty {name: Defense} dict")
    if chunk is not None:
        chunk = check_positive_int(chunk, "chunk")
        chunk = None if chunk > x.shape[0] else chunk      # n == chunk: one part (what a longer run reuses)
    attackers = dict(attackers or {})
    unknown = sorted(set(attackers) - set(defenses))
    if unknown:
        raise ValueError(f"attackers: {unknown} are not among the defenses {list(defenses)}")
    if not isinstance(cascade, bool):
        raise TypeError(f"cascade: expected True or False, got {cascade!r}")
    results: dict = {}
    for name, d in defenses.items():
        att = attackers.get(name)
        alive, before = {}, []     # cascade: {eps: the images every attack before failed on (None: unknown)}
        for a in attacks:
            if a.kwargs["eot_samples"] > 1 and not callable(getattr(att or d, "reseeded", None)):
                continue                                  # EOT is only for randomised defenses
            after, before = list(before), before + [a.label]
            for e in eps_values:
                mask = alive.get(e, torch.ones(len(y), dtype=torch.bool)) if cascade else None
                path = piece_path(out, name, a, e)
                if cascade and mask is None:
                    if compute_missing or missing is None:
                        raise FileNotFoundError(f"{path}: an earlier attack of the cascade on {name} at eps {e:.2f} "
                                                "is not stored")
                    missing.append((name, a.label, e, str(path)))
                    continue
                extra = {} if att is None else {"attacker_defense": att.settings()}
                if a.kwargs.get("attack") == "autoattack":
                    extra["autoattack"] = AUTOATTACK_STANDARD       # 100 iterations, not torchattacks' 10
                settings = protocol_settings(classifier, [d], x, y, [e], attack=a.settings(), seed=seed,
                                             batch_size=batch_size, **extra, **({} if chunk is None else {"chunk": chunk}),
                                             **({} if mask is None else {"cascade": cascade_settings(after, mask)}))

                def attack_part(lo, hi, d=d, a=a, e=e, att=att, mask=mask, after=after):
                    t0 = time.perf_counter()

                    def go(rows=None):
                        xs, ys = (x[lo:hi], y[lo:hi]) if rows is None else (x[lo:hi][rows], y[lo:hi][rows])
                        return whitebox_accuracy(d, classifier, xs, ys, [e], seed=seed + lo, batch_size=batch_size,
                                                 attacker=att, **a.kwargs)
                    r = go() if mask is None else on_survivors(
                        go, mask[lo:hi], e, after=after, threat_model="not run: an earlier attack broke every image",
                        defense=name, attack={**a.settings(), "attack_precision": attack_precision(a.kwargs.get("attack_bf16", False),
                                                                                       a.kwargs.get("attack_fold", False))})
                    r["seconds_per_image"] = (time.perf_counter() - t0) / (hi - lo)
                    return r

                def in_parts(d=d, a=a, e=e, path=path, extra=extra, attack_part=attack_part, mask=mask, after=after,
                             read_only=False):
                    got, infos = [], []
                    for lo, hi in bounds(x.shape[0], chunk):
                        cs = {} if mask is None else {"cascade": cascade_settings(after, mask[lo:hi])}
                        ps = protocol_settings(classifier, [d], x[lo:hi], y[lo:hi], [e], attack=a.settings(),
                                               seed=seed + lo, batch_size=batch_size, part=[lo, hi], **extra, **cs)
                        if read_only:
                            stored = load_stored(part_path(path, lo, hi), ps, from_state=lambda s: s, log=lambda m: None)
                            if stored is None:
                                return None
                            r, info = stored
                        else:
                            r, info = load_or_evaluate(part_path(path, lo, hi), ps, lambda: attack_part(lo, hi),
                                                       reevaluate=reevaluate, to_state=lambda r: r,
                                                       from_state=lambda s: s, log=log)
                            log(f"[campaign] {name} {a.label} eps {e:.2f} images {lo}-{hi}: "
                                f"{100 * r['accuracy'][e]:.1f}% ({info['status']})")
                        got.append(r)
                        infos.append({k: info[k] for k in PART_PROVENANCE})
                    return {**merge(got), "part_provenance": infos}

                def compute(d=d, a=a, e=e, att=att, path=path):
                    if not compute_missing:
                        raise FileNotFoundError(
                            f"{path}: no stored piece for {name}, {a.label}, eps {e:.2f} with these settings; "
                            "compute it with python -m egan_lib.eval.campaign (see its --help)")
                    return attack_part(0, len(y)) if chunk is None else in_parts()
                try:
                    got = None
                    if not compute_missing and chunk is not None and not reevaluate:
                        # read only: the stored piece, else one assembled in memory from its stored parts
                        got = load_stored(path, settings, from_state=lambda s: s, log=lambda m: None)
                        if got is None:
                            whole = in_parts(read_only=True)
                            got = None if whole is None else (whole, {"status": "assembled from parts", "path": str(path),
                                                                      **_provenance_of_parts(whole["part_provenance"])})
                    r, info = got or load_or_evaluate(path, settings, compute, reevaluate=reevaluate,
                                                      to_state=lambda r: r, from_state=lambda s: s, log=log)
                except FileNotFoundError:
                    if compute_missing or missing is None:
                        raise
                    missing.append((name, a.label, e, str(path)))
                    if cascade:
                        alive[e] = None
                    continue
                if cascade:
                    alive[e] = mask & r["correct"][e].cpu().bool()
                log(f"[campaign] {name} {a.label} eps {e:.2f}: {100 * r['accuracy'][e]:.1f}% (n = {r['n']}, "
                    f"{1000 * r['seconds_per_image']:.0f} ms/image, {info['status']})")
                results.setdefault(name, {}).setdefault(a.label, {})[e] = {**r, "info": info}
    return results


PART_PROVENANCE = ("machine", "device", "threads", "date", "seconds", "status")


def _provenance_of_parts(infos: list) -> dict:
    """One provenance for a piece from its parts' (machines, dates, the sum of their seconds)."""
    return {"machine": "; ".join(sorted({i["machine"] for i in infos})),
            "device": "; ".join(sorted({str(i["device"]) for i in infos})),
            "threads": "; ".join(sorted({str(i["threads"]) for i in infos})),
            "date": max(i["date"] for i in infos), "seconds": round(sum(float(i["seconds"]) for i in infos), 1)}


def summary(results: dict) -> dict:
    """{defense: {"worst": worst-case result, "per_attack": {label: {eps: acc}}, "cost": {label: s/image}}}."""
    out = {}
    for name, per_attack in results.items():
        merged = {}
        for label, by_eps in per_attack.items():
            merged[label] = {"correct": {e: r["correct"][e] for e, r in by_eps.items()}}
            if all("attacked" in r for r in by_eps.values()):
                merged[label]["attacked"] = {e: r["attacked"][e] for e, r in by_eps.items()}
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
            alone = ", ".join(f"{lab} {100 * acc[e]:.1f}" for lab, acc in s["per_attack"].items() if e in acc)
            dec = ", ".join(f"{lab} {k}" for lab, k in w["decisive"][e].items() if k) or "-"
            rows.append(f"| {name} | {e:.2f} | {100 * w['accuracy'][e]:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | "
                        f"{w['n']} | {alone} | {dec} |")
    return "\n".join(rows)




def on_manifold(ws, x, y, eps_values, out, *, steps: int, restarts: int, reevaluate: bool = False,
                compute_missing: bool = True, log=print, missing: list | None = None) -> dict:
    """The on-manifold search on EGAN (``egan_lib.attacks.onmanifold``), one stored piece per eps under
    ``<out>/EGAN/onmanifold_<steps>x<restarts>/``: {eps: result with feasible / success per image and the
    deployed EGAN's verdict ``correct``}. A feasibility result: where no G(z) lies in the eps ball the
    attacker has nothing to submit but x."""
    from ..attacks.base import predict, purify_batched
    from ..attacks.onmanifold import on_manifold_attack
    from ..defenses import get_defenses
    C, _ = ws.classifier()
    G, _ = ws.generator()
    E, _ = ws.encoder()
    egan = get_defenses(ws, ["EGAN"])["EGAN"]
    label = f"onmanifold:{steps}x{restarts}"
    res = {}
    for e in eps_values:
        settings = protocol_settings(C, [egan], x, y, [e], attack={"label": label, "steps": steps, "restarts": restarts},
                                     seed=ws.seed, batch_size=ws.profile.eval_batch)
        path = Path(out) / "EGAN" / label.replace(":", "_") / f"eps{e:.2f}.pt"

        def compute(e=e, path=path):
            if not compute_missing:
                raise FileNotFoundError(f"{path}: no stored on-manifold piece at eps {e:.2f}; compute it with "
                                        "python -m egan_lib.eval.campaign --plan onmanifold")
            t0 = time.perf_counter()
            r = on_manifold_attack(G, E, C, x, y, e, steps=steps, restarts=restarts, seed=ws.seed, defense=egan,
                                   batch_size=ws.profile.eval_batch)
            keep = {k: r[k] for k in ("threat_model", "accuracy", "ci95", "n", "success_rate", "success_ci95",
                                      "feasible_rate", "success", "feasible", "attack")}
            keep["correct"] = {e: predict(C, purify_batched(egan, r["x_adv"], ws.profile.eval_batch),
                                          batch_size=ws.profile.eval_batch) == y.cpu()}   # the deployed verdict
            keep["seconds_per_image"] = (time.perf_counter() - t0) / len(y)
            return keep
        try:
            r, info = load_or_evaluate(path, settings, compute, reevaluate=reevaluate, to_state=lambda r: r,
                                       from_state=lambda s: s, log=log)
        except FileNotFoundError:
            if compute_missing or missing is None:
                raise
            missing.append(("EGAN", label, e, str(path)))
            continue
        log(f"[campaign] EGAN {label} eps {e:.2f}: feasible {100 * r['feasible_rate']:.1f}%, success "
            f"{100 * r['success_rate']:.1f}% (n = {r['n']}, {info['status']})")
        res[e] = {**r, "info": info}
    return res



def dgan_surrogate(ws, steps: int, restarts: int):
    """The attacker's Defense-GAN: the deployed one's generator, lr and schedule with L = ``steps`` and
    R = ``restarts`` (and another seed: the attacker does not know the deployed random draw)."""
    from ..defenses.defensegan import build
    real = build(ws)
    twin = real.__class__(real.generator, steps=check_positive_int(steps, "steps"),
                          restarts=check_positive_int(restarts, "restarts"), lr=real.lr, momentum=real.momentum,
                          lr_decay=real.lr_decay, decay_at=real.decay_at, init_std=real.init_std,
                          seed=real.seed + 7919, device=real.device)
    twin.batch_size = ws.profile.eval_batch
    return twin


def campaign_dir(results_dir, profile_name: str) -> Path:
    return Path(results_dir) / "evaluations" / f"mnist-{profile_name}-campaign"


def run_plan(ws, results_dir, *, jobs=None, only_eps=None, only_defenses=None, only_attacks=None,
             reevaluate: bool = False, compute_missing: bool = True, log=print, missing: list | None = None,
             chapter: int = 7, first_n: int | None = None) -> dict:
    """Run (or reuse) the profile's plan for ``chapter`` (7: ``plan``, 8: ``robust_plan``) into
    ``<results_dir>/evaluations/mnist-<profile>-campaign/``:
    {job name: {defense: {attack: {eps: result}}}}. ``jobs``, ``only_eps``, ``only_defenses`` restrict it
    (the background runner orders the expensive pieces last); ``only_attacks`` (specs) too, and in a
    cascade it must name the cascade's first attacks (a later one needs those before it). ``first_n``: only
    the first images of every job (its pieces are then stored for those n; with whole parts of a chunked job,
    the parts are the ones the full run reuses: see ``egan_lib.eval.plan_progress``). A chapter passes
    ``compute_missing=False`` where a missing piece must not start hours of attacks (with a ``missing`` list
    it then goes on without it and lists it there)."""
    if first_n is not None:
        first_n = check_positive_int(first_n, "first_n")
    if chapter not in PLANS:
        raise ValueError(f"chapter: expected one of {sorted(PLANS)}, got {chapter!r}")
    from ..defenses import get_defenses
    C, _ = ws.classifier()
    x, y = ws.test_set()
    out = campaign_dir(results_dir, ws.profile.name)
    todo = [j for j in PLANS[chapter](ws.profile) if jobs is None or j.name in jobs]
    res = {}
    for j in todo:
        names = [d for d in j.defenses if only_defenses is None or d in only_defenses]
        eps = [e for e in j.eps if only_eps is None or any(abs(e - o) < 1e-9 for o in only_eps)]
        if not names or not eps:
            continue
        attacks = restrict_attacks(j, only_attacks)
        if not attacks:
            continue
        n = min(j.n, len(y), first_n or j.n)
        if j.name == "onmanifold":
            p = ws.profile
            res[j.name] = on_manifold(ws, x[:n], y[:n], sorted(eps), out, steps=p.onmanifold_steps,
                                      restarts=p.onmanifold_restarts, reevaluate=reevaluate,
                                      compute_missing=compute_missing, log=log, missing=missing)
            continue
        defs = get_defenses(ws, names)
        att = {"Defense-GAN": dgan_surrogate(ws, *j.attacker)} if j.attacker and "Defense-GAN" in defs else None
        res[j.name] = run(C, defs, x[:n], y[:n], attacks, sorted(eps), out, seed=ws.seed,
                          batch_size=j.batch or ws.profile.campaign_batch, reevaluate=reevaluate, log=log, attackers=att,
                          compute_missing=compute_missing, missing=missing, chunk=j.chunk, cascade=j.cascade)
    return res


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
    ap.add_argument("--batch", type=int, default=None, help="images per attack batch (default: the profile's "
                    "campaign_batch, 64 for cpu: the fastest on 2 CPU cores)")
    ap.add_argument("--reevaluate", action="store_true")
    ap.add_argument("--plan", nargs="*", default=None, metavar="JOB",
                    help="run the profile's plan (what chapter 07 shows) into --results-dir: all jobs, or the named "
                         "ones (main, pixeldefend, restarts, steps, autoattack, dgan, onmanifold); --defenses/--eps/--attacks "
                         "then only restrict it (in a cascade, --attacks names its first attacks)")
    ap.add_argument("--chapter", type=int, default=7, choices=sorted(PLANS),
                    help="whose plan --plan runs: 7 (the paper's defenses) or 8 (the robust variants: robust, robust-latent-egan)")
    ap.add_argument("--by-part", action="store_true",
                    help="with --plan: finish every attack on each stored part of images before the next part "
                         "(run_plan_by_part): after each part, the worst case over all attacks is final on the images so far")
    ap.add_argument("--progress", action="store_true",
                    help="with --plan: compute nothing; print, per defense and eps, on how many images every attack "
                         "of the job is stored and the worst case on them")
    ap.add_argument("--results-dir", default="book/results")
    a = ap.parse_args(argv)
    if a.plan is not None:
        from .. import setup
        from . import plan_progress
        ws = setup(a.profile, a.seed, a.device, None, a.artifacts, progress=False, threads=a.threads)
        if a.progress:
            print(plan_progress.markdown(plan_progress.progress(
                ws, a.results_dir, chapter=a.chapter, jobs=a.plan or None,
                only_eps=a.eps if "--eps" in (argv if argv is not None else sys.argv) else None,
                only_defenses=a.defenses if "--defenses" in (argv if argv is not None else sys.argv) else None)))
            return 0
        res = (plan_progress.run_plan_by_part if a.by_part else run_plan)(
                       ws, a.results_dir, jobs=a.plan or None, reevaluate=a.reevaluate, chapter=a.chapter,
                       only_eps=a.eps if "--eps" in (argv if argv is not None else sys.argv) else None,
                       only_defenses=a.defenses if "--defenses" in (argv if argv is not None else sys.argv) else None,
                       only_attacks=a.attacks if "--attacks" in (argv if argv is not None else sys.argv) else None)
        for job, r in res.items():
            if job != "onmanifold":
                print(f"## {job}\n" + markdown(summary(r)))
        return 0
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
              batch_size=check_positive_int(a.batch or ws.profile.campaign_batch, "batch"), reevaluate=a.reevaluate)
    print(markdown(summary(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
