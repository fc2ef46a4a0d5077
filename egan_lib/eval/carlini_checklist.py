"""Carlini et al.'s evaluation checklist ("On Evaluating Adversarial Robustness", 2019, sec. 3) for chapter
07's campaign: each item paraphrased, what we did, a status and the evidence, computed from the stored
pieces (``egan_lib.eval.campaign_report`` reads them)."""
from __future__ import annotations

from .campaign_report import oblivious_curve, percent_interval, by_defense, convergence, worst_case


def _acc_str(w: dict, e: float) -> str:
    return percent_interval(int(w["correct"][e].sum()), w["n"]) + f"% (n = {w['n']})"


def rows(res: dict, profile, *, oblivious: dict | None = None, references=(), defense: str = "EGAN",
              tolerance_points: float = 1.0) -> list:
    """Carlini et al.'s evaluation checklist ("On Evaluating Adversarial Robustness", 2019, sec. 3),
    paraphrased, with what this campaign did, a status ("pass", "partly", "open") and the evidence, each
    computed from the stored pieces. Returns [(item, what we did, status, evidence)]."""
    wcs = worst_case(res)
    byd = by_defense(res)
    w = wcs.get(defense)
    rows = []
    if w is None:
        raise ValueError(f"defense: {defense!r} was not attacked in this campaign ({list(wcs)})")
    es = sorted(w["accuracy"])
    e_mid = min(es, key=lambda e: abs(e - 0.3))
    labels = sorted({lab for d in byd.values() for lab in d})
    rows.append(("State a precise threat model", f"L-inf, eps in {[round(e, 2) for e in es]}, pixels in [0, 1]; the "
                 "attacker knows C, E, G and every defense's weights (white-box); untargeted misclassification",
                 "pass", "every table names its threat model"))
    ob = oblivious_curve(oblivious, defense)
    fg = None
    if ob is not None:
        xs, ys = ob
        near = [y for x, y in zip(xs, ys) if abs(x - e_mid) < 1e-9]
        fg = near[0] if near else None
    rows.append(("Adaptive attacks on the whole defense", "PGD through C(G(E(x))) with exact gradients; BPDA through "
                 "PixelDefend and Defense-GAN", "pass",
                 f"{defense} at eps {e_mid:g}: oblivious FGSM {fg:.1f}%, worst case {_acc_str(w, e_mid)}" if fg is not None
                 else f"{defense} at eps {e_mid:g}: worst case {_acc_str(w, e_mid)}"))
    rows.append(("Release source and models", "egan_lib, the shipped weights, every stored attack piece and the "
                 "command that recomputes it", "pass", "python -m egan_lib.eval.campaign --profile "
                 f"{profile.name} --plan"))
    if oblivious and defense in oblivious.get("methods", {}) and "0.00" in oblivious["methods"][defense]["accuracy"]:
        clean = 100 * oblivious["methods"][defense]["accuracy"]["0.00"]
        rows.append(("Report clean accuracy", "chapter 06, same classifier and purifier", "pass",
                     f"{defense} clean: {clean:.1f}%"))
    if fg is not None:
        rows.append(("Iterative attacks beat single-step ones", "PGD (100+ steps) against FGSM", 
                     "pass" if 100 * w["accuracy"][e_mid] < fg else "open",
                     f"eps {e_mid:g}: FGSM {fg:.1f}% > PGD worst case {100 * w['accuracy'][e_mid]:.1f}%"))
    e_hi = es[-1]
    chance = 100.0 / 10
    rows.append(("A large enough budget reaches 100% success", f"the sanity point eps {e_hi:g}",
                 "pass" if 100 * w["accuracy"][e_hi] <= chance else "open",
                 f"{defense} worst case at eps {e_hi:g}: {_acc_str(w, e_hi)} (chance: {chance:.0f}%)"))
    rows.append(("Plot accuracy against the budget", "the worst-case figure, every defense, eps "
                 f"{', '.join(f'{e:g}' for e in es)}", "pass", "figure above"))
    dec = w["decisive"][e_mid]
    rows.append(("Report the per-example worst case over attacks", "an image counts as defended only if every "
                 "attack run at its eps failed", "pass",
                 f"eps {e_mid:g}: images only one attack broke: " + (", ".join(f"{k} {v}" for k, v in dec.items()) or "-")))
    rows.append(("Describe every attack and its hyper-parameters", "the attacks table and the results JSON "
                 "(steps, restarts, step size, loss, EOT, stopping margin, precision, n, cost)", "pass",
                 f"{len(labels)} attacks"))
    has_aa = any("autoattack" in lab for lab in labels)
    rows.append(("Use diverse attacks, not near-duplicates", "PGD on cross-entropy and on the CW margin"
                 + ("; AutoAttack (APGD-CE, targeted APGD-T, FAB-T, Square)" if has_aa else ""),
                 "pass" if has_aa else "partly", ", ".join(labels)))
    aa_labels = [lab for lab in w["per_attack"] if lab.startswith("autoattack")]
    if aa_labels:
        gaps = [(e, w["decisive"][e].get(lab, 0)) for e in es for lab in aa_labels if e in w["per_attack"][lab]]
        # (eps >= 0.5 is the sanity point, where guessing bounds every defense: no AutoAttack needed there)
        not_run = [e for e in es if e < 0.5 and not any(e in w["per_attack"][lab] for lab in aa_labels)]
        allowed = tolerance_points / 100 * w["n"]
        rows.append(("An independent attack finds nothing more", "AutoAttack beside our PGD attacks, image by image",
                     "pass" if all(k <= allowed for _, k in gaps) and not not_run else "open",
                     ", ".join(f"eps {e:g}: {k} of {w['n']} images only AutoAttack broke" for e, k in gaps)
                     + (f"; AutoAttack not run at eps {', '.join(f'{e:g}' for e in not_run)}: read those numbers "
                        "as upper bounds" if not_run else "")))
    rows.append(("Try a gradient-free attack", "Square (5,000 queries) inside AutoAttack" if has_aa else "none",
                 "partly" if has_aa else "open",
                 "Square only ran on the images the gradient attacks before it left (AutoAttack's cascade)"
                 if has_aa else "-"))
    rows.append(("Try a hard-label (decision-based) attack", "not run", "open", "-"))
    rows.append(("Try a transfer attack", "chapter 06's FGSM computed on the undefended C is one", "pass" if fg is not None
                 else "open", f"{defense} keeps {fg:.1f}% at eps {e_mid:g}, far above the white-box worst case"
                 if fg is not None else "-"))
    dg = [(name, lab) for name, d in byd.items() for lab in d if lab.startswith("eot")]
    rows.append(("Randomised defenses: attack the expectation (EOT)",
                 "Defense-GAN's random restarts: " + ", ".join(f"{lab}" for _, lab in dg) if dg else "not run",
                 "pass" if dg else "open",
                 "; ".join(f"{name}, {lab} alone: {100 * acc:.1f}% at eps {e:g}" for name, lab in dg
                           for e, acc in sorted(wcs[name]["per_attack"][lab].items()))
                 + "; worst case " + "; ".join(f"{_acc_str(wcs[name], e)} at eps {e:g}" for name in sorted({n for n, _ in dg})
                                               for e in sorted(wcs[name]["accuracy"])) if dg else "-"))
    bp = [name for name, d in byd.items() for lab, by_eps in d.items()
          if next(iter(by_eps.values()))["attack"].get("bpda")]
    rows.append(("Non-differentiable parts: BPDA", ", ".join(sorted(set(bp))) or "none", "pass" if bp else "open",
                 "forward: the real purification; backward: the identity"))
    conv = convergence(res, profile, defense)
    if len(conv["steps"]) >= 2:
        (k1, c1, n1), (k2, c2, n2) = conv["steps"][-2], conv["steps"][-1]
        d = 100 * (c1 / n1 - c2 / n2)
        rows.append(("More iterations do not help", f"PGD-CE at {', '.join(str(s) for s, _, _ in conv['steps'])} steps, "
                     f"eps {conv['steps_eps']:g}", "pass" if abs(d) <= tolerance_points else "open",
                     f"{k1} -> {k2} steps: {100 * c1 / n1:.1f}% -> {100 * c2 / n2:.1f}% ({d:+.1f} points; n = {n2})"))
    moves = []
    for (spec, e), pts in conv["restarts"].items():
        if len(pts) >= 2:
            moves.append((100 * (pts[-2][1] - pts[-1][1]) / pts[-1][2], spec, e, pts[-1][0]))
    if moves:
        worst = max(moves)
        rows.append(("Random restarts", f"{profile.restarts_attack}: the deployed pipeline's verdict after each "
                     f"of {moves[0][3]} restarts",
                     "pass" if worst[0] <= tolerance_points else "open",
                     f"the last restart lowered accuracy by at most {worst[0]:.1f} points ({worst[1]}, eps {worst[2]:g})"))
    refs = [r for r in references if getattr(r, "norm", "Linf") == "Linf"]
    rows.append(("Compare with the strongest published numbers", "adversarial training and a certified method at "
                 "eps 0.3, under their best known attacks", "pass" if refs else "open",
                 "; ".join(f"{r.label} {100 * r.accuracy:.1f}%" for r in refs) or "-"))
    rows.append(("Targeted and untargeted attacks", "untargeted PGD" + ("; targeted APGD-T and FAB-T" if has_aa else ""),
                 "pass" if has_aa else "partly", "-"))
    if "Original" in wcs:
        wo = wcs["Original"]
        rows.append(("Ablation: attack the undefended model", "C alone under the same attacks", "pass",
                     ", ".join(f"eps {e:g}: {100 * wo['accuracy'][e]:.1f}%" for e in sorted(wo["accuracy"]))))
    rows.append(("Broader threats (rotations, noise, corruptions)", "not run", "open", "-"))
    rows.append(("Consider certified defenses", "not applicable to a purifier of this size; CROWN-IBP shown as "
                 "reference", "partly", "-"))
    return rows


def markdown(rows: list) -> str:
    out = ["| checklist item | what we did | status | evidence |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | **{c}** | {d} |" for a, b, c, d in rows]
    return "\n".join(out)
