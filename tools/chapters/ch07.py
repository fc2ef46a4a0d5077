def build(header, setup_cell, md, code):
    return header("07", "Beyond the paper: adaptive attacks and an honest verdict", "07_adaptive") + [
        md("""
## Overview

Chapter 06 measured every defense against an attacker who ignores it: FGSM's gradient is taken
through the classifier alone. The field's standard since Athalye, Carlini and Wagner
{cite}`athalye2018obfuscated` and Carlini et al. {cite}`carlini2019evaluating` is to attack the
*whole* defended system. EGAN is differentiable end to end, so a white-box attacker can follow the
gradient straight through C(G(E(x))). This chapter does that for every method.

**What you will learn**

1. PGD, the iterated version of FGSM, and why it is the baseline of any robustness claim.
2. White-box attacks through a differentiable purifier, and BPDA for the ones that are not
   (Defense-GAN's inner optimisation, PixelDefend's argmax).
3. An on-manifold attack on EGAN: an image G can draw, inside the eps ball, that C gets wrong.
4. Whether the attacks have converged, and how the numbers compare with adversarial training.
5. Why no defense at all can beat guessing at eps >= 0.5.

| Prerequisite | Importance | Notes |
|---|---|---|
| Chapters 04-06 | necessary | FGSM, the defenses, the protocol |
| The [threat-models page](threat_models.md) | helpful | oblivious vs adaptive |

Time: about 3-4 minutes on 2 CPU cores (cpu profile); the settings below say what is shrunk.

## The threat models

| name | the attacker knows | attack |
|---|---|---|
| oblivious (FGSM) | C only | FGSM on C, then purify (chapter 06) |
| oblivious-pgd | C only | PGD on C, then purify |
| adaptive-pgd | C and the purifier | PGD on x -> C(purify(x)), exact gradients |
| adaptive-bpda | C and the purifier | PGD with BPDA: the purifier's backward pass replaced by the identity |
| on-manifold | G, E and C | search z with ‖G(z) - x‖∞ <= eps and C(G(z)) != y |

PGD {cite}`madry2018pgd`: start at a random point of the eps ball, take `steps` signed gradient
steps of size alpha, project back onto the ball and [0, 1] after each. Every accuracy below is
measured on the deployed system, C(purify(x_adv)), whatever the attacker optimised.
"""),
        setup_cell("import json\nfrom pathlib import Path\nfrom IPython.display import Markdown, display\n"
                   "from egan_lib import adaptive, study, defenses as dfn\nfrom egan_lib.evaluate import git_commit, read_results, select_results, write_results, merge_results\n"),
        code("""
C, _ = ws.classifier()
G, _ = ws.generator()
E, _ = ws.encoder()
methods = dfn.get_defenses(ws)
x_te, y_te = ws.test_set()
p = ws.profile
eps_values = list(p.adaptive_eps)
print(f"eps {eps_values}; PGD {p.pgd_steps} steps on the first {p.adaptive_n_test} test images; "
      f"PixelDefend and Defense-GAN: {p.adaptive_expensive_steps} steps (BPDA) on the first {p.adaptive_expensive_n}")
"""),
        code("""
s = study.adaptive_study(C, methods, x_te, y_te, eps_values, n_main=p.adaptive_n_test,
                         n_expensive=p.adaptive_expensive_n, steps=p.pgd_steps,
                         steps_expensive=p.adaptive_expensive_steps, generator=G, encoder=E,
                         on_manifold_steps=p.onmanifold_steps, seed=seed, progress=ws.progress)
""", tags=["hide-output"]),
        code("""
oblivious = select_results(read_results(Path(results_dir) / f"mnist-{p.name}.json"), "oblivious")
spi = {m: v["seconds_per_image"] for m, v in oblivious["methods"].items()}
entries = study.study_entries(s, dataset="mnist", profile=p.name, device=str(ws.device), git_commit=git_commit(),
                              seconds_per_image=spi, extra={"seed": seed})
path = write_results(merge_results(oblivious, *entries), Path(results_dir) / f"mnist-{p.name}-adaptive.json")
display(Markdown(study.accuracy_table(entries, eps_values, oblivious=oblivious)))
om = s["results"].get("on-manifold", {}).get("EGAN")
if om:
    print("on-manifold search on EGAN: success rate", {e: round(v, 2) for e, v in om["success_rate"].items()},
          "| feasible rate (some G(z) inside the eps ball)", {e: round(v, 2) for e, v in om["feasible_rate"].items()})
"""),
        md("""
The table reads row by row: the same method, the same images, a stronger attacker. The
oblivious rows repeat chapter 06 on the full subset (their n is larger).

## EGAN under every threat model
"""),
        code("""
fig = study.plot_threat_models(entries, "EGAN", eps_values, oblivious=oblivious,
                               reference_lines=[adaptive.MADRY_PGD_AT_MNIST, adaptive.TRADES_MNIST])
"""),
        md("""
*What to see:* the oblivious curves are the paper's picture. Once the attacker differentiates
through E and G, EGAN's accuracy falls far below them: the purifier is just more layers in front of
C, and PGD finds a direction that survives the projection. The dashed lines are what adversarial
training reaches at eps = 0.3 under the strongest known attacks on MNIST: Madry et al.'s PGD
training {cite}`madry2018pgd` and TRADES {cite}`zhang2019trades` (numbers from their public
leaderboards).

## Every method, white-box
"""),
        code("""
fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.2), sharey=True)
for ax, name in zip(axes, methods):
    study.plot_threat_models(entries, name, eps_values, oblivious=oblivious, ax=ax, title=name)
    ax.legend(fontsize=6)
fig.tight_layout()
"""),
        md("""
## Has the attack converged?

A robustness number is only an upper bound until more effort stops lowering it
{cite}`carlini2019evaluating`. We rerun the white-box PGD on EGAN with twice the steps and with
twice the restarts.
"""),
        code("""
n_conv = min(p.adaptive_n_test, 100)
def egan_acc(steps, restarts):
    return adaptive.whitebox_accuracy(methods["EGAN"], C, x_te[:n_conv], y_te[:n_conv], [eps_values[0]],
                                      steps=steps, restarts=restarts, seed=seed)
conv = adaptive.convergence_check(egan_acc, p.pgd_steps, 1)
print(f"eps {eps_values[0]}, n = {n_conv}:", {k: v for k, v in conv.items() if k != "runs"})
"""),
        md("""
If `converged` is True, doubling the steps or the restarts moved EGAN's accuracy by less than one
point and the white-box number stands; if not, the printed deltas say how much further a stronger
attack went, and the white-box accuracies above are upper bounds.

## A hybrid: Defense-GAN started at E(x)

Between EGAN (one encoder pass) and Defense-GAN (L x R generator steps) there is a middle road:
start Defense-GAN's search at z = E(x) and take a few gradient steps. Where does it land on the
paper's time/accuracy figure (oblivious FGSM, eps = 0.5)?
"""),
        code("""
from egan_lib.evaluate import evaluate
n_h = p.expensive_n_test or len(y_te)
hybrids = [adaptive.HybridDefense(E, G, steps=k) for k in p.hybrid_steps]
hres = evaluate(C, [methods["EGAN"], *hybrids, methods["Defense-GAN"]], x_te[:n_h], y_te[:n_h], [0.0, 0.5],
                timing_repeats=1)
display(Markdown(hres.table()))
fig = plots.plot_time_vs_accuracy(hres, eps=0.5, title=f"Oblivious FGSM, eps 0.5: EGAN, hybrids, Defense-GAN (n = {n_h})")
"""),
        md("""
## Why nothing beats guessing at eps >= 0.5

Every pixel value v in [0, 1] is within 0.5 of 0.5. So at eps = 0.5 an attacker can replace
*every* input with the same flat grey image, whatever its class. Any deterministic defended
classifier then gives one answer for all inputs, and its accuracy is the share of that class:
at most the largest class share (11.35% on the MNIST test set, 10% on our class-balanced subset).
No defense, adaptive or not, escapes this; an oblivious FGSM at eps = 0.5 simply does not find it.
"""),
        code("""
g = adaptive.guessing_bound_demo(x_te, y_te, eps=0.5, classifier=C, defense=methods["EGAN"])
print(f"max L-inf distance from a test digit to the grey image: {g['max_linf']:.2f}; every digit -> class "
      f"{g['predicted_class']}; accuracy {g['accuracy']:.1%} <= bound {g['bound']:.1%} (n = {len(y_te)})")
idx = el.data.one_per_class(y_te)
fig = plots.image_grid(torch.cat([x_te[idx], g["x_adv"][idx]]), nrow=10,
                       title="Top: one digit per class. Bottom: the eps = 0.5 attack that sends all of them to one image")
"""),
        md("""
## Verdict

- **Against the paper's attacker** (FGSM computed on C alone), chapter 06's claims table says
  where EGAN matches the paper on our run and where it does not (on our run APE-GAN and the
  AutoEncoder keep up with or beat it up to eps = 0.3).
- **Against an attacker who knows the defense**, EGAN's accuracy falls to the white-box rows
  above: the encoder and generator are differentiable, and PGD goes through them. What EGAN buys,
  then, is protection against attackers who do not model the purifier (transfer attacks, attacks
  crafted for an undefended model), at a low cost per image. It is not a certified or white-box
  robust defense, and it does not approach adversarial training (dashed lines) at eps = 0.3.
- **BPDA numbers** for PixelDefend and Defense-GAN come from fewer images and steps (see the
  settings); read them as upper bounds. The same holds for the on-manifold rows: the printed
  feasible rate says for how many digits the search found any G(z) inside the eps ball at all; where
  it found none, the attacker submitted the clean digit, so the on-manifold row then only repeats
  EGAN's clean accuracy. A longer search (the `paper` profile) is needed before this row says
  anything about EGAN.
- **At eps >= 0.5** every method, defended or not, is bounded by guessing: curves that stay high
  there in chapter 06 measure the weakness of FGSM, not the strength of a defense.

## Summary

- Name the threat model next to every robustness number; the same defense can read 90% or 0%.
- Differentiable purifiers are attacked through; non-differentiable ones with BPDA.
- Check convergence (more steps, more restarts) before trusting a white-box number.

## Exercises

1. Attack EGAN with PGD through E only, i.e. maximise the distance between E(x_adv) and E(x).
   Is it as strong as attacking C(G(E(x)))?
2. Add expectation over transformation: purify with a random shift of one pixel before E. Does a
   BPDA + EOT attack still break it?

**What's next?** The [threat-models page](threat_models.md) collects the argument; the
[Reproduce page](reproduce.md) shows how to run everything at the paper's scale on a GPU.
"""),
    ]
