def build(header, setup_cell, md, code):
    return header("04", "The classifier and the attack: FGSM", "04_attack") + [
        md("""
## Overview

The defense protects a classifier C. Here we train the paper's C, attack it with the Fast Gradient
Sign Method, and measure how fast an undefended classifier breaks as the attack grows.

**What you will learn**

1. The paper's small classifier (10,630 parameters) and its clean accuracy, with an interval.
2. FGSM: one gradient, one step of size eps in every pixel.
3. What an attack of each eps does to one digit of each class.
4. The undefended accuracy curve that every defense in chapter 06 is measured against.

| Prerequisite | Importance | Notes |
|---|---|---|
| Chapter 01 | necessary | the data and the evaluation subset |
| Cross-entropy, gradients | necessary | the attack is a gradient step |

Time: seconds; the classifier is trained in chapter 02 (75 s on 2 idle AVX-512 CPU cores, cpu profile;
several minutes on older CPUs), or here if you run this chapter first.

## The classifier

Exactly the paper's: Conv2d(1 -> 20, 3x3, stride 2) + batch norm + ReLU, Conv2d(20 -> 10, 3x3,
stride 3) + batch norm + ReLU, giving 4x4x10; Linear(160, 50) + ReLU, Linear(50, 10), LogSoftmax.
It is trained on clean training digits with the negative log-likelihood, Adam and a cosine decay
(the paper gives neither optimiser nor epochs; the profile sets them, printed below).
"""),
        setup_cell("from egan_lib.attacks import accuracy, fgsm_grid, predict\nfrom egan_lib.evaluate import wilson_interval\n"),
        code("""
# NBVAL_CHECK_OUTPUT
C, hist = ws.classifier()
print(f"C: {el.models.count_parameters(C):,} parameters; {ws.profile.clf_epochs} epochs, batch {ws.profile.clf_batch}, "
      f"Adam lr {ws.profile.clf_lr}")
"""),
        code("""
x_all, y_all = ws.full_test_set()
k = int((predict(C, x_all) == y_all).sum())
lo, hi = wilson_interval(k, len(y_all))
print(f"clean accuracy on the full MNIST test set: {k / len(y_all):.2%} "
      f"(95% Wilson interval {lo:.2%} - {hi:.2%}, n = {len(y_all):,}); the paper reports 99%")
fig = plots.plot_curves(hist, ["loss"], xlabel="training step", ylabel="NLL loss",
                        title="Classifier training loss")
"""),
        md("""
## FGSM

Goodfellow et al. {cite}`goodfellow2015fgsm` linearise the loss $J$ around the input and take the
step that increases it most under an L-inf budget:

$$\\mathbf x_{adv} = \\operatorname{clip}_{[0,1]}\\big(\\mathbf x + \\epsilon\\,\\operatorname{sign}(\\nabla_{\\mathbf x} J(C(\\mathbf x), y))\\big).$$

Every pixel moves by exactly eps (unless clipping stops it), in the direction that hurts C most to
first order. In the paper's setting the gradient is taken through C alone: the attacker does not
know a defense will be put in front of C (the *oblivious* or gray-box threat model; chapter 07
drops that assumption). One gradient serves the whole eps grid.

## One digit per class, across eps
"""),
        code("""
x_te, y_te = ws.test_set()
idx = el.data.one_per_class(y_te)
show_eps = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
adv = fgsm_grid(C, x_te[idx], y_te[idx], show_eps)
cols = {f"eps {e:.2f}": a for e, a in adv.items()}
fig = plots.plot_examples(cols, labels=y_te[idx], preds={f"eps {e:.2f}": predict(C, a) for e, a in adv.items()},
                          title="FGSM on one test digit per class (columns: eps; titles: C's prediction)")
"""),
        md("""
*What to see:* at eps = 0.1 the digit is intact and already often misread; by eps = 0.3 the
background is grey noise; at eps = 0.5 every pixel sits at either 0.5 +/- 0.5, i.e. 0 or 1, chosen by
the gradient's sign, and the original digit is largely gone; at eps = 1 the image is a pure sign
pattern. An attack that large changes what a human sees too: it is not "imperceptible" any more.

## Undefended accuracy against eps
"""),
        code("""
eps_values = ws.profile.eps_grid()
adv_all = fgsm_grid(C, x_te, y_te, eps_values)
correct = {e: int((predict(C, a) == y_te).sum()) for e, a in adv_all.items()}
acc = {e: c / len(y_te) for e, c in correct.items()}
ci = {e: wilson_interval(c, len(y_te)) for e, c in correct.items()}
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(eps_values, [acc[e] for e in eps_values], "o-", label="no defense (FGSM through C)")
ax.fill_between(eps_values, [ci[e][0] for e in eps_values], [ci[e][1] for e in eps_values], alpha=0.3)
ax.axhline(0.1135, ls=":", c="gray", label="always guess the largest class")
ax.set(xlabel="eps (L-inf, pixel range [0, 1])", ylabel="accuracy", ylim=(0, 1.02),
       title=f"Undefended accuracy, 95% Wilson bands (n = {len(y_te):,} test images)")
ax.legend();
"""),
        code("""
# NBVAL_CHECK_OUTPUT
print("eps   accuracy   95% interval")
for e in eps_values:
    print(f"{e:4.2f}  {acc[e]:7.1%}   [{ci[e][0]:.1%}, {ci[e][1]:.1%}]")
"""),
        md("""
*What to see:* the curve falls steeply: a small eps already costs much of the accuracy. This is
the "Original" curve of the paper's Fig. 4; every defense of chapter 05 must lift it.

## Summary

- The paper's 10,630-parameter classifier reaches the accuracy printed above on clean test digits
  (the paper: 99%).
- FGSM moves every pixel by eps along the sign of the loss gradient; one gradient covers every eps.
- Without a defense, accuracy collapses well before eps = 0.3.

## Exercises

1. Attack with random signs instead of the gradient's sign (same eps). How much of FGSM's damage
   is due to the gradient, and how much to noise alone?
2. Train C with random shifts of up to two pixels (`el.training.train_classifier(...,
   augment_shift=2)`). Does the clean accuracy change? The FGSM curve?

**What's next?** Chapter 05 builds the five published baselines, and chapter 06 puts every defense
in front of this classifier.
"""),
    ]
