"""Chapter 07's reading of the attack campaign (``egan_lib.eval.campaign``): what each attack was and what
it cost, the convergence curves, the per-image worst case, the results-JSON entries and Carlini et al.'s
checklist. Everything here is computed from the stored pieces; nothing is typed in.

``res`` below is what ``campaign.run_plan`` returns: {job: {defense: {attack label: {eps: result}}}}.
"""
from __future__ import annotations

from ..attack_spec import parse_attack
from .stats import wilson_interval


def by_defense(res: dict) -> dict:
    """{defense: {attack label: {eps: result}}}, every job merged (the worst case is over all of them)."""
    out: dict = {}
    for jname, job in res.items():
        if jname == "onmanifold":           # a feasibility search, not an attack with an accuracy
            continue
        for name, per_attack in job.items():
            for label, by_eps in per_attack.items():
                out.setdefault(name, {}).setdefault(label, {}).update(by_eps)
    return out


def percent_interval(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _attack_cells(r: dict) -> tuple[str, str, str]:
    a = r["attack"]
    if a["attack"] == "autoattack":
        comp = a.get("components", {})
        what = ("APGD-CE, APGD-T, FAB-T ({} iterations), Square ({} queries)".format(
            comp.get("apgd-ce", {}).get("steps", "?"), comp.get("square", {}).get("n_queries", "?")))
        return "AutoAttack (standard)", what, "-"
    if a["attack"] == "latent":
        return "latent path", f"{a['steps']} steps x {a['restarts']} restarts on ‖E(x + δ) - E(x)‖², step {a['step_size']}", "-"
    loss = {"ce": "cross-entropy", "cw": "CW margin"}[a["loss"]]
    step = a["step_size"] if isinstance(a["step_size"], str) else f"{a['step_size']:g}"
    eot = f", EOT {a['eot_samples']}" if a.get("eot_samples", 1) > 1 else ""
    return f"PGD, {loss}", f"{a['steps']} steps x {a['restarts']} restarts, step {step}{eot}", \
        (f"{a.get('confidence', 0):g}" if isinstance(a.get("confidence", 0), (int, float)) else "none")


def attacks_table(res: dict) -> str:
    """Markdown, one row per (defense, attack): threat model, what ran (steps, restarts, step size, loss,
    EOT, the attacker's surrogate), stopping margin, precision, n, the measured cost per image at each
    eps (the attack and the deployed defense's verdict, on the machine that computed the piece), and the
    images, summed over eps, that the attacker stopped as broken but the deployed defense got right."""
    rows = ["| defense | attack | threat model | settings | stop margin | attacker's arithmetic | n | "
            "cost per image (s), by eps | attacker/deployed disagreements |", "|---|---|---|---|---|---|---|---|---|"]
    for name, per_attack in by_defense(res).items():
        for label, by_eps in per_attack.items():
            r0 = next(iter(by_eps.values()))
            kind, what, margin = _attack_cells(r0)
            sur = r0["attack"].get("attacker_defense")
            if isinstance(sur, dict):
                what += f"; through a surrogate with L = {sur.get('L_steps')}, R = {sur.get('R_restarts')}"
            cost = ", ".join(f"{e:.2f}: {r['seconds_per_image']:.2g}" for e, r in sorted(by_eps.items()))
            dis = [int(v) for r in by_eps.values() for v in r.get("attacker_disagrees", {}).values()]
            rows.append(f"| {name} | {kind} | {r0['threat_model']} | {what} | {margin} | "
                        f"{r0['attack']['attack_precision']} | {r0['n']} | {cost} | {sum(dis) if dis else '-'} |")
    return "\n".join(rows)


def worst_case(res: dict) -> dict:
    """{defense: the per-image worst case over every attack run on it, every job merged
    (``campaign.summary``'s "worst")}."""
    from .campaign import summary
    return {name: s["worst"] for name, s in summary(by_defense(res)).items()}


def worst_case_table(res: dict, eps_values=None) -> str:
    """Markdown: rows = defenses, columns = eps; each cell the worst-case accuracy (%) with its 95%
    Wilson interval; n per row; then, per eps, each attack alone and how many images only it broke."""
    wcs = worst_case(res)
    eps_all = sorted({e for w in wcs.values() for e in w["accuracy"]}) if eps_values is None else list(eps_values)
    head = "| defense | n | " + " | ".join(f"eps {e:.2f}" for e in eps_all) + " |"
    rows = [head, "|" + "---|" * (2 + len(eps_all))]
    for name, w in wcs.items():
        cells = []
        for e in eps_all:
            if e in w["accuracy"]:
                k = int(w["correct"][e].sum())
                cells.append(percent_interval(k, w["n"]))
            else:
                cells.append("-")
        rows.append(f"| {name} | {w['n']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def per_attack_table(res: dict, defense: str) -> str:
    """Markdown for one defense: each attack alone (accuracy %, interval) and the images only it broke,
    per eps, and the worst case; a reader sees which attack did the work. An attack of a cascade
    (``egan_lib.eval.cascade``) ran only on the images the rows above it left: its cell is the worst case
    through it, with the images it broke among those."""
    w = worst_case(res)[defense]
    eps_all = sorted(w["accuracy"])
    rows = ["| attack | " + " | ".join(f"eps {e:.2f}" for e in eps_all) + " |", "|" + "---|" * (1 + len(eps_all))]
    n = w["n"]
    for label, acc in w["per_attack"].items():
        cells = []
        for e in eps_all:
            if e in acc and label in w.get("cascaded", ()):
                cells.append(percent_interval(round(acc[e] * n), n) + f"; broke {w['decisive'][e].get(label, 0)} more")
            elif e in acc:
                only = w["decisive"][e].get(label, 0)
                cells.append(percent_interval(round(acc[e] * n), n) + (f"; {only} only by it" if only else ""))
            else:
                cells.append("-")
        rows.append(f"| {label}{' (on what the rows above left)' if label in w.get('cascaded', ()) else ''} | "
                    + " | ".join(cells) + " |")
    rows.append("| **worst case per image** | " + " | ".join(f"**{percent_interval(int(w['correct'][e].sum()), n)}**"
                                                          for e in eps_all) + " |")
    return "\n".join(rows)


def convergence(res: dict, profile, defense: str = "EGAN") -> dict:
    """The curves that justify the attack budget, from stored pieces only:

    * ``steps``: [(steps, correct, n)] of PGD-CE with one restart at ``profile.steps_curve_eps`` (the point
      with the restarts attack's step count is that attack's first restart);
    * ``restarts``: {(label, eps): [(restarts, correct, n)]} of ``profile.restarts_attack``, the deployed
      pipeline's verdict after 1, 2, ... restarts (pieces that recorded it: ``restart_verdict``).
    Accuracies are of the deployed pipeline (see ``whitebox_accuracy`` and ``pgd``'s ``judge``)."""
    from .campaign import steps_curve_specs
    per = by_defense(res).get(defense, {})
    e0 = profile.steps_curve_eps
    steps = []
    for k, spec in steps_curve_specs(profile).items():
        r = _at(per.get(spec, {}), e0)
        if r is None:
            continue
        row = r["correct_after_restart"][_key(r["correct_after_restart"], e0)][0] \
            if spec == profile.restarts_attack else r["correct"][_key(r["correct"], e0)]
        steps.append((k, int(row.sum()), int(row.numel())))
    restarts = {}
    spec = profile.restarts_attack
    for e, r in sorted(per.get(spec, {}).items()):
        car = r.get("correct_after_restart", {})
        if not car or not r.get("attack", {}).get("restart_verdict"):
            continue
        m = car[_key(car, e)]
        restarts[(spec, e)] = [(i + 1, int(m[i].sum()), int(m.shape[1])) for i in range(m.shape[0])]
    return {"defense": defense, "steps_eps": e0, "steps": steps, "restarts": restarts}


def _key(d: dict, e: float):
    for k in d:
        if abs(float(k) - e) < 1e-9:
            return k
    raise KeyError(e)


def _at(by_eps: dict, e: float):
    for k, v in by_eps.items():
        if abs(float(k) - e) < 1e-9:
            return v
    return None


def plot_convergence(conv: dict):
    """Two panels: accuracy (%) against PGD steps (log axis) and against restarts, with 95% Wilson bands."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    if conv["steps"]:
        ks = [s for s, _, _ in conv["steps"]]
        acc = [100 * c / n for _, c, n in conv["steps"]]
        lo = [100 * wilson_interval(c, n)[0] for _, c, n in conv["steps"]]
        hi = [100 * wilson_interval(c, n)[1] for _, c, n in conv["steps"]]
        ax1.plot(ks, acc, "o-", label=f"PGD-CE, 1 restart (n = {conv['steps'][0][2]})")
        ax1.fill_between(ks, lo, hi, alpha=0.2)
        ax1.set_xscale("log")
        ax1.set_xticks(ks, [str(k) for k in ks])
        ax1.legend(fontsize=8)
    ax1.set(xlabel="PGD steps (step size 2.5 eps / steps)", ylabel="accuracy (%)",
            title=f"{conv['defense']}, white-box, eps {conv['steps_eps']:g}: more steps")
    for (spec, e), pts in sorted(conv["restarts"].items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rs = [r for r, _, _ in pts]
        acc = [100 * c / n for _, c, n in pts]
        line, = ax2.plot(rs, acc, "o-", label=f"{spec}, eps {e:g}")
        ax2.fill_between(rs, [100 * wilson_interval(c, n)[0] for _, c, n in pts],
                         [100 * wilson_interval(c, n)[1] for _, c, n in pts], alpha=0.15, color=line.get_color())
    ax2.set(xlabel="random restarts", ylabel="accuracy (%)", title=f"{conv['defense']}, white-box: more restarts")
    if conv["restarts"]:
        ax2.set_xticks(range(1, 1 + max(len(v) for v in conv["restarts"].values())))
    ax2.legend(fontsize=7, ncol=2)
    for ax in (ax1, ax2):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    return fig


def oblivious_at(oblivious: dict | None, name: str, eps: float):
    """Chapter 06's oblivious-FGSM accuracy (%) of ``name`` at ``eps``, or None when that eps is not on its
    grid (the smoke profile's grid, say) or the method is not there."""
    try:
        return 100 * oblivious["methods"][name]["accuracy"][f"{eps:.2f}"]
    except (KeyError, TypeError):
        return None


def oblivious_curve(oblivious: dict | None, name: str):
    if not oblivious or name not in oblivious.get("methods", {}):
        return None
    m = oblivious["methods"][name]
    ks = sorted(m["accuracy"], key=float)
    return [float(k) for k in ks], [100 * m["accuracy"][k] for k in ks]


def plot_worst_case(res: dict, *, oblivious: dict | None = None, references=(), defenses=None, title=None):
    """Accuracy (%) against eps: each defense's per-image worst case over every attack (solid, 95% Wilson
    bands; a defense attacked at one eps only is a point with its interval) and, dashed, its oblivious FGSM
    curve from chapter 06 (the paper's threat model). Published L-inf references are points at their eps."""
    from matplotlib.figure import Figure
    wcs = worst_case(res)
    names = [d for d in (defenses or wcs) if d in wcs]
    fig = Figure(figsize=(9, 5.6), layout="constrained")
    ax = fig.add_subplot()
    for name in names:
        w = wcs[name]
        es = sorted(w["accuracy"])
        ks = [int(w["correct"][e].sum()) for e in es]
        acc = [100 * k / w["n"] for k in ks]
        lo = [100 * wilson_interval(k, w["n"])[0] for k in ks]
        hi = [100 * wilson_interval(k, w["n"])[1] for k in ks]
        if len(es) == 1:
            line = ax.errorbar(es, acc, yerr=[[a - l for a, l in zip(acc, lo)], [h - a for a, h in zip(acc, hi)]],
                               fmt="s", ms=7, capsize=4, label=f"{name}: worst case (n = {w['n']})")
            color = line[0].get_color()
        else:
            line, = ax.plot(es, acc, "o-", label=f"{name}: worst case (n = {w['n']})")
            color = line.get_color()
            ax.fill_between(es, lo, hi, alpha=0.15, color=color)
        ob = oblivious_curve(oblivious, name)
        if ob is not None:
            xs, ys = ob
            keep = [i for i, x in enumerate(xs) if x <= max(es) + 1e-9]
            ax.plot([xs[i] for i in keep], [ys[i] for i in keep], "--", color=color, alpha=0.7, lw=1.2,
                    label=f"{name}: oblivious FGSM (ch. 06)")
    refs = [r for r in references if getattr(r, "norm", "Linf") == "Linf"]
    for i, (ref, marker) in enumerate(zip(refs, "*Dv^")):
        dx = 0.008 * (i - (len(refs) - 1) / 2)        # side by side: two references share 92.5% at 0.3
        ax.plot([ref.eps + dx], [100 * ref.accuracy], marker, c="k", ms=8, ls="none",
                label=f"{ref.label}: {100 * ref.accuracy:.1f}% (eps {ref.eps:g})")
    ax.set(xlabel="eps (L-inf, pixels in [0, 1])", ylabel="accuracy (%)", ylim=(-2, 102),
           title=title or "White-box worst case per image (solid) against the paper's oblivious FGSM (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    return fig


def json_entries(res: dict, *, dataset: str, profile: str, device: str, git_commit: str,
                 purify_seconds: dict) -> list:
    """Results-JSON entries (``egan_lib.eval.schema``): one per attack (every defense it ran on; the
    settings record steps, restarts, step size, loss, EOT, margin, precision, n, and the measured cost per
    image) and the per-image worst case over all attacks ("worst-case"; a defense attacked at other eps
    gets its own "worst-case, <defense>" entry). ``seconds_per_image`` is the defense's purification time
    (chapter 06), so the rows compare with the oblivious ones; the attacks' costs are in the settings."""
    from .schema import validate_results_json
    byd = by_defense(res)
    per_label: dict = {}
    for name, per_attack in byd.items():
        for label, by_eps in per_attack.items():
            per_label.setdefault(label, {})[name] = by_eps
    entries = []

    def k(e):
        return f"{e:.2f}"

    def spi(name):
        v = purify_seconds.get(name)
        if v is None or not v > 0:
            raise ValueError(f"purify_seconds: missing a positive time for {name!r}")
        return float(v)

    for label, per_def in per_label.items():
        methods = {}
        for name, by_eps in per_def.items():
            r0 = next(iter(by_eps.values()))
            methods[name] = {"accuracy": {k(e): r["accuracy"][e] for e, r in by_eps.items()},
                             "ci95": {k(e): list(r["ci95"][e]) for e, r in by_eps.items()},
                             "seconds_per_image": spi(name), "n": r0["n"],
                             "settings": {**r0["attack"], "threat_model": r0["threat_model"],
                                          "attack_seconds_per_image": {k(e): r["seconds_per_image"]
                                                                       for e, r in by_eps.items()},
                                          "attacker_disagrees": {k(e): int(v) for e, r in by_eps.items()
                                                                 for v in r.get("attacker_disagrees", {}).values()}}}
        groups: dict = {}
        for name, m in methods.items():
            groups.setdefault(tuple(sorted(m["accuracy"])), {})[name] = m
        for i, (keys, ms) in enumerate(groups.items()):
            tm = f"white-box {label}" + ("" if len(groups) == 1 else f" ({', '.join(ms)})")
            entries.append({"dataset": dataset, "profile": profile, "device": device,
                            "n_test": max(m["n"] for m in ms.values()), "threat_model": tm,
                            "git_commit": git_commit, "methods": ms})
    wcs = worst_case(res)
    groups = {}
    for name, w in wcs.items():
        groups.setdefault(tuple(sorted(w["accuracy"])), {})[name] = w
    for keys, ws_ in groups.items():
        ms = {}
        for name, w in ws_.items():
            ms[name] = {"accuracy": {k(e): w["accuracy"][e] for e in keys},
                        "ci95": {k(e): list(w["ci95"][e]) for e in keys},
                        "seconds_per_image": spi(name), "n": w["n"],
                        "settings": {"attacks_at": {k(e): list(w["attacks_at"][e]) for e in keys},
                                     "decisive": {k(e): dict(w["decisive"][e]) for e in keys},
                                     "attack_seconds_per_image_total": {
                                         k(e): sum(byd[name][lab][e]["seconds_per_image"] for lab in w["attacks_at"][e])
                                         for e in keys}}}
        tm = "worst-case" if len(groups) == 1 or keys == max(groups, key=len) else f"worst-case, {', '.join(ms)}"
        entries.append({"dataset": dataset, "profile": profile, "device": device,
                        "n_test": max(m["n"] for m in ms.values()), "threat_model": tm, "git_commit": git_commit,
                        "methods": ms, "extra": {"definition": "per image: defended only if every attack run at "
                                                               "that eps failed on it"}})
    validate_results_json(entries)
    return entries


def onmanifold_table(res: dict) -> str:
    """Markdown for the on-manifold search: per eps, the share of digits for which some G(z) lies in the
    eps ball (feasible), the share whose G(z) fools C (success), and those of the latter that the deployed
    EGAN also gets wrong, each with n and a Wilson interval. A feasibility result, not an accuracy."""
    om = res.get("onmanifold") or {}
    if not om:
        return "The on-manifold search is not among this run's stored pieces (see the list above)."
    rows = ["| eps | a G(z) inside the eps ball | C(G(z)) wrong (attack success) | EGAN wrong on the submitted image | n | "
            "search |", "|---|---|---|---|---|---|"]
    for e, r in sorted(om.items()):
        n = r["n"]
        feas = int(r["feasible"].sum())
        succ = int(r["success"].sum())
        wrong = int((~r["correct"][e]).sum())
        a = r["attack"]
        rows.append(f"| {e:.2f} | {percent_interval(feas, n)} | {percent_interval(succ, n)} | {percent_interval(wrong, n)} | {n} | "
                    f"{a['steps']} Adam steps x {a['restarts']} starts around E(x) |")
    return "\n".join(rows)


def provenance(res: dict) -> str:
    """One paragraph: how many pieces were reused or computed, on which machines, when, and the compute
    time they cost (the sum of every piece's measured seconds; a piece stored in parts counts its parts',
    which may come from several machines and sittings)."""
    pieces = []
    for jname, job in res.items():
        if jname == "onmanifold":
            pieces += [r for r in job.values() if "info" in r]
            continue
        for per_attack in job.values():
            for by_eps in per_attack.values():
                pieces += [r for r in by_eps.values() if "info" in r]
    if not pieces:
        return "no stored pieces"
    status = {}
    for r in pieces:
        status[r["info"]["status"]] = status.get(r["info"]["status"], 0) + 1
    runs = [i for r in pieces for i in r.get("part_provenance", [r["info"]])]
    machines = sorted({f"{i['machine']} ({i['threads']} threads, {i['device']})" for i in runs})
    dates = sorted(i["date"] for i in runs)
    total = sum(float(i["seconds"]) for i in runs)
    st = ", ".join(f"{v} {k}" for k, v in sorted(status.items()))
    return (f"{len(pieces)} pieces ({st}), computed on {'; '.join(machines)} between {dates[0]} and {dates[-1]}: "
            f"{total / 60:.0f} min of compute in all (each piece's measured time).")


def missing_markdown(missing: list, profile_name: str) -> str:
    """The pieces of the plan that are not stored yet (the chapter shows the others), and the command
    that computes them in the background."""
    rows = [f"**{len(missing)} pieces of the plan are not computed yet**, so the tables and figures below "
            "leave them out (a number that is not there is not a number we have):", "",
            "| defense | attack | eps |", "|---|---|---|"]
    rows += [f"| {d} | {a} | {e:.2f} |" for d, a, e, _ in missing]
    rows += ["", f"`python -m egan_lib.eval.campaign --profile {profile_name} --plan` computes them, resumably."]
    return "\n".join(rows)
