def build(header, setup_cell, md, code):
    return header("03", "The encoder: inverting a frozen generator", "03_encoder") + [
        md("""
## Overview

EGAN's one new part is an encoder E that maps an image to the latent vector G would need to draw
it. With E, purification is a single forward pass, G(E(x)), instead of an optimisation per image.

**What you will learn**

1. The paper's encoder, layer by layer, and why it has 2,005,530 parameters.
2. The paper's training algorithm: latents drawn once, G frozen, a squared-error loss.
3. How well E inverts G, on generated digits it never saw and on real test digits.
4. What bf16 autocast buys on a CPU, and what it costs in accuracy.

| Prerequisite | Importance | Notes |
|---|---|---|
| Chapter 02 | necessary | the frozen G |
| Convolutions with and without padding | helpful | 28 -> 26 -> ... -> 6 |

Time: about 10-20 minutes to train on 2 CPU cores (cpu profile), seconds when loaded.

## The idea

The encoder $E:[0,1]^{28\\times28}\\to\\mathbb R^{L}$ should satisfy $G(E(\\mathbf X))\\approx\\mathbf X$.
The paper trains it with this algorithm:

1. Draw $T$ random latent vectors $\\mathbf z_i\\sim\\mathcal N(0, I_L)$, $i = 1..T$.
2. Generate $\\mathbf X_i = G(\\mathbf z_i)$ with G frozen.
3. Run an epoch of stochastic gradient descent on the loss (the paper's eq. 4)
$$\\mathcal L(E) = \\frac1T\\sum_{i=1}^{T}\\lVert \\mathbf X_i - G(E(\\mathbf X_i))\\rVert^2 .$$
4. Stop after the maximum number of epochs, else go to 3.

The loss compares *images*, not latents: E may return any z that G turns into the same digit.
E itself follows the paper exactly: a 3x3 convolution block (conv, batch norm, LeakyReLU 0.2) from
1 to 100 channels; ten blocks that keep 28x28x100; eleven blocks without padding that shrink the
map by two pixels each, 28 -> 6; a flatten to 3,600 numbers and a linear layer to L = 30.

The paper leaves open $T$, the optimiser, the learning rate and the number of epochs. We use Adam
with a cosine decay, batches of 64, and the $T$ and epochs of the profile (printed below). The
encoder is by far the most expensive network of the book (about 1.2 GMAC per image forward), so
the `cpu` profile trains it on fewer latents and epochs than the `paper` profile; the numbers below
say how much that costs in reconstruction quality.
"""),
        setup_cell("from egan_lib.training import generate\n"),
        code("""
# NBVAL_CHECK_OUTPUT
p = ws.profile
print(f"encoder: {p.enc_channels} channels, 1 + {p.enc_same_blocks} + {p.enc_valid_blocks} blocks, "
      f"{el.models.count_parameters(el.models.build_encoder(p)):,} parameters")
print(f"training: T = {p.enc_latents:,} latents drawn once, {p.enc_epochs} epochs, batch {p.enc_batch}, "
      f"Adam lr {p.enc_lr} (cosine), bf16 autocast {p.bf16}, channels_last {p.channels_last}")
"""),
        code("""
G, _ = ws.generator()
E, hist = ws.encoder()
print("encoder weights:", ws.timings["encoder"]["status"], f"({ws.timings['encoder']['seconds']:.0f} s)")
fig = plots.plot_curves(hist, ["loss"], xlabel="training step (batches of 64)",
                        ylabel="||X - G(E(X))||^2 per image", title="Encoder training loss (eq. 4)")
"""),
        md("""
*What to see:* the loss falls fast in the first few hundred steps, when E learns the rough digit
class and position, then slowly, as it learns stroke width and slant.

## How well does E invert G?

Two test sets: 1,000 *new* generated digits G(z) (latents E never saw), which E can in principle
invert exactly, and real test digits, which G may not be able to draw at all. The reconstruction
error of a real digit therefore mixes E's error with G's own limits.
"""),
        code("""
x_gen = generate(G, 1000, seed=seed + 12345)
x_te, y_te = ws.test_set()
for name, x in (("held-out G(z)", x_gen), ("real test digits", x_te)):
    m, h, n = explore.mean_ci(explore.squared_error(x, explore.reconstruct(E, G, x)))
    print(f"{name:17s}: ||x - G(E(x))||^2 = {m:.2f} +/- {h:.2f} (mean, 95% CI, n = {n:,})")
"""),
        code("""
idx = el.data.one_per_class(y_te)
pairs = torch.cat([x_te[idx], explore.reconstruct(E, G, x_te[idx]), x_gen[:10], explore.reconstruct(E, G, x_gen[:10])])
fig = plots.image_grid(pairs, nrow=10, title="Rows: real test digit x, its G(E(x)); generated G(z), its G(E(G(z)))")
"""),
        md("""
*What to see:* generated digits come back almost unchanged; real digits come back as a
*similar-looking* digit that G can draw: usually the same class, with a cleaner stroke, sometimes a
different thickness or slant. That projection is exactly what is meant to strip an adversarial
perturbation, and also the source of EGAN's clean-accuracy loss.

## bf16 on a CPU: measured

The encoder dominates EGAN's cost (2 M parameters, 11 layers at the full 28x28 resolution). Under
bf16 autocast the convolutions run in bfloat16, which can roughly halve the cost on CPUs with
native bf16 instructions (AVX-512 BF16, AMX) and is emulated, far slower, on others. We compare error and speed
on the same 32 test digits (time: median of 3 runs after a warm-up, on this machine's threads).
"""),
        code("""
res = explore.compare_precision(E, G, x_te[:32])
print(explore.precision_report(res))
"""),
        md("""
The paired line is the one to read for accuracy: if its interval contains 0, bf16 costs no
reconstruction error we can measure on these digits. The speed factor depends on the machine: above
1 bf16 pays, below 1 it costs time (typically where bf16 is emulated). The `cpu` profile trains and
runs E in fp32 because it has to work on any 2-core machine, including AVX2-only CPUs (torch
reports "AVX2"), where bf16 autocast was many times slower than fp32 in our runs, in training as
well. On a CPU with native bf16 (AVX-512 BF16 or AMX, reported as "AVX512" or "AMX") it can pay:
see exercise 3.

## Summary

- E is the paper's 23-block convolutional encoder with 2,005,530 parameters at 100 channels.
- It is trained only on generated images, with G frozen; real digits are never used.
- It inverts G well on new G(z); on real digits, G(E(x)) is the closest digit G can draw.

## Exercises

1. Train E with a quarter of the latents (`enc_latents`) and compare the error on real digits. Is
   E limited by data or by G?
2. Feed E a digit shifted by three pixels. Does G(E(x)) follow the shift, or snap back to the
   centre? What does that tell you about the digits G can draw?
3. Time one short training with and without bf16 on your machine, e.g.
   `el.training.train_encoder(el.models.build_encoder(p), G, n_latents=2_000, epochs=1, bf16=True)`,
   then compare both errors above. Where bf16 is both faster and as accurate, the profile field
   `bf16` switches it on for the whole book.

**What's next?** Chapter 04 trains the classifier and attacks it.
"""),
    ]
