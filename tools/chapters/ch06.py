def build(header, setup_cell, md, code):
    return header("06", "Results: does EGAN do what the paper says?", "06_results") + [
        md("""
## Overview

This is the chapter the book is for: the paper's comparison, rebuilt with every number carrying a
95% interval and the number of images behind it, and every claim of the paper checked against it.

**What you will learn**

1. The evaluation protocol, and why it must be the same for every method.
2. Accuracy against eps for all seven methods (the paper's Fig. 4), with interval bands.
3. Time against accuracy at eps = 0.5 (Fig. 5), and what each method costs per image.
4. What each defense makes of one attacked digit per class (Figs. 2-3), with an eps slider.
5. Which of the paper's claims our numbers support.

| Prerequisite | Importance | Notes |
|---|---|---|
| Chapters 04 and 05 | necessary | the attack and the defenses |
| Confidence intervals for a proportion | helpful | Wilson's interval {cite}`wilson1927` |

Time: about 5 minutes on 2 CPU cores (cpu profile): PixelDefend and Defense-GAN dominate.

## The protocol

- One fixed, class-balanced subset of the test set (drawn once per seed, chapter 01).
- The paper's *oblivious* threat model: FGSM's gradient is taken through the classifier alone,
  once per eps; every defense then purifies **the same** attacked images.
- Accuracy = share of purified attacked images that C labels correctly, with a 95% Wilson interval.
- The two expensive methods (PixelDefend, Defense-GAN) are measured on the first images of the
  same subset when the profile says so; their n is shown next to every number.
- Time per image: one warm-up call, then the median of three runs on the same batch, device and
  number of threads (CUDA synchronised on a GPU).
"""),
        setup_cell("from pathlib import Path\nfrom IPython.display import Markdown, display\n"
                   "from egan_lib import claims, defenses as dfn, slider\nfrom egan_lib.evaluate import evaluate, write_results, git_commit\n"),
        code("""
C, _ = ws.classifier()
methods = dfn.get_defenses(ws)
x_te, y_te = ws.test_set()
eps_values = ws.profile.eps_grid()
n_exp = ws.profile.expensive_n_test or len(y_te)
n_per_method = {"PixelDefend": n_exp, "Defense-GAN": n_exp}
print(f"{len(methods)} methods, {len(y_te)} test images ({n_exp} for PixelDefend and Defense-GAN), "
      f"{len(eps_values)} eps values: {eps_values}")
"""),
        code("""
res = evaluate(C, list(methods.values()), x_te, y_te, eps_values, batch_size=ws.profile.eval_batch,
               n_per_method=n_per_method, progress=ws.progress)
obj = res.to_json_dict("mnist", ws.profile.name, device=str(ws.device), git_commit=git_commit(),
                       extra={"seed": ws.seed, "eps_values": eps_values})
path = write_results(obj, Path(results_dir) / f"mnist-{ws.profile.name}.json")
print("wrote", path.name, "| timing:", {k: v for k, v in res.timing.items() if k != "per_method"})
"""),
        md("""
## Accuracy against eps (the paper's Fig. 4)
"""),
        code("""
fig, ax = plt.subplots(figsize=(9, 5))
plots.plot_accuracy_vs_eps(res, ax=ax, title=f"FGSM, oblivious threat model: accuracy with 95% Wilson bands")
ax.axhline(100 * max(explore.class_counts(y_te)) / len(y_te), ls=":", c="gray", lw=1);
"""),
        code("""
display(Markdown(res.table(eps=[e for e in (0.0, 0.1, 0.25, 0.3, 0.5, 1.0) if e in eps_values])))
"""),
        md("""
*What to see:* at eps = 0 the purifiers cost some clean accuracy (most for the generative ones,
whose output is the closest digit their model can draw). As eps grows, the undefended curve falls
first; the question is which method keeps the most accuracy where, and whether the differences are
larger than the bands. The dotted line is the share of the largest class in the evaluated subset (10%: it is
class-balanced): the accuracy of a system that always gives the same answer.

## Time against accuracy at eps = 0.5 (the paper's Fig. 5)
"""),
        code("""
fig = plots.plot_time_vs_accuracy(res, eps=0.5, title="eps = 0.5: seconds per image (log scale) vs accuracy")
"""),
        md("""
*What to see:* EGAN's cost is one encoder pass and one generator pass; Defense-GAN runs
L x R generator passes (forward and backward) per image, and PixelDefend one PixelCNN pass per
pixel. The horizontal position is measured on this machine (printed above), so the *ratios* carry
over to other machines better than the absolute numbers.

## What each defense does to one digit per class (Figs. 2-3)
"""),
        code("""
fig = plots.plot_examples(res.examples, eps=0.5, title="eps = 0.5: clean, attacked, and each method's output "
                          "(labels: C's prediction; green right, red wrong)")
"""),
        md("""
### Slide through eps

The slider below works in the published page with no kernel: it swaps precomputed images for
every eps of the grid and marks the accuracies at that eps.
"""),
        code("""
slider.static_eps_slider(res, res.examples, title="Oblivious FGSM: move eps")
"""),
        md("""
In Jupyter or Colab, the live version recomputes the attack and every defense for the eps you
pick (it needs a running kernel, so the published page does not show it):
"""),
        code("""
idx = el.data.one_per_class(y_te)[:4]
live = slider.live_eps_slider(C, [methods[m] for m in ("EGAN", "APE-GAN", "DnCNN", "AutoEncoder")],
                              x_te[idx], y_te[idx], eps_values)
live
""", tags=["remove-output"]),
        md("""
## The paper's claims, checked

Each verdict follows from the numbers above and their intervals ("significantly" means: the 95%
intervals do not overlap). The last row measures noise as the mean grey level a method leaves on the
background of the clean digit.
"""),
        code("""
rows = claims.paper_claims(obj, res.examples)
display(Markdown(claims.claims_markdown(rows)))
"""),
        md("""
## Summary

- Under the paper's own threat model (FGSM computed on the classifier alone), the table and
  figures above give each method's accuracy with its interval, and the claims table says where the
  paper holds on our run and where it does not.
- Everything here assumes an attacker who ignores the defense. Chapter 07 removes that
  assumption, and the picture changes.
- The numbers live in `book/results/mnist-<profile>.json`; the introduction's headline table
  is read from it when the book is built.

## Exercises

1. Re-run with another seed (`seed = 1`). Which differences in the table survive, and which were
   within the noise the intervals promised?
2. The eps grid stops at 1. What must every method's accuracy be at eps = 1 under FGSM, and why is
   it not exactly chance? (Hint: FGSM at eps = 1 maps each pixel to 0 or 1 by the gradient's sign.)

**What's next?** Chapter 07 attacks the whole defended system.
"""),
    ]
