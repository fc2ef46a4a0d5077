def build(header, setup_cell, md, code):
    return header("02", "The generator: a DCGAN with a 30-dimensional latent space", "02_gan") + [
        md("""
## Overview

EGAN never changes a pixel itself: it replaces the input with an image *drawn by a generator*. So
the defense is only as good as G: every digit G cannot draw is a digit EGAN will get wrong.

**What you will learn**

1. The GAN game and the DCGAN recipe that trains G and its discriminator D.
2. How to read the loss curves of a GAN (they do not go to zero, and that is fine).
3. How to check sample quality with numbers: class coverage and confidence under a classifier,
   and a nearest-neighbour test for memorisation.
4. What the 30-dimensional latent space looks like along a straight line.

| Prerequisite | Importance | Notes |
|---|---|---|
| Chapter 01 | necessary | the data |
| Transposed convolutions, batch norm | helpful | the DCGAN building blocks |

Time: about 8-11 minutes to train G and the classifier on 2 CPU cores (cpu profile; measured on two
AMD EPYC machines, see the README), seconds when the weights are loaded.

## The idea

A generator $G:\\mathbb{R}^{L}\\to[0,1]^{28\\times 28}$ maps a latent vector
$\\mathbf z\\sim\\mathcal N(0, I_L)$, $L = 30$, to an image $\\mathbf X = G(\\mathbf z)$ (the paper's
eq. 1). A discriminator $D$ scores how real an image looks. They play the game

$$\\min_G \\max_D\\; \\mathbb E_{\\mathbf x}[\\log D(\\mathbf x)] + \\mathbb E_{\\mathbf z}[\\log(1 - D(G(\\mathbf z)))],$$

trained by alternating one step on $D$ (real images to 1, generated ones to 0) and one step on $G$
with the non-saturating loss $-\\log D(G(\\mathbf z))$. The paper says only "DCGAN"; we use the
standard MNIST DCGAN of Radford et al. {cite}`radford2016dcgan`: a linear layer to a 7x7 map, two
stride-2 transposed convolutions with batch norm and ReLU, a sigmoid output in [0, 1]; D mirrors it
with strided convolutions and LeakyReLU(0.2); Adam with learning rate 2e-4 and beta1 = 0.5.
"""),
        setup_cell("from egan_lib.training import generate\n"),
        code("""
G, D, hist = ws.gan()
print(f"G: {el.models.count_parameters(G):,} parameters, D: {el.models.count_parameters(D):,} parameters; "
      f"weights {ws.timings['generator']['status']}")
"""),
        md("""
`ws.gan()` is *load-or-train*: it loads a verified checkpoint made with this exact configuration
(profile, seed, epochs, widths, ...), or trains and saves one. A checkpoint that is corrupt or was
made with another configuration is reported, never silently loaded.

## Training curves
"""),
        code("""
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
plots.plot_curves(hist, ["loss_d", "loss_g"], ax=axes[0], xlabel="training step (batches of "
                  f"{ws.profile.gan_batch})", ylabel="BCE loss", title="DCGAN losses")
plots.plot_curves(hist, ["d_real", "d_fake"], ax=axes[1], xlabel="training step",
                  ylabel="mean D output", title="D's score on real and generated images")
fig.tight_layout()
"""),
        md("""
*What to see:* neither loss goes to zero. A healthy GAN stays in a tug of war: D's output on real
images stays above its output on generated ones, but neither saturates at 1 or 0. A D loss that
collapses to zero would mean G has stopped learning.

## Samples
"""),
        code("""
samples = generate(G, 100, seed=seed + 1)
fig = plots.image_grid(samples, nrow=10, title="100 samples G(z), z ~ N(0, I)")
"""),
        md("""
## Walking in the latent space

G is continuous: moving z along a straight line morphs one digit into another. EGAN relies on this
smoothness: a small change of the input should move E(x) a little, and G(E(x)) a little.
"""),
        code("""
g = torch.Generator().manual_seed(seed + 2)
z0, z1 = torch.randn(6, ws.profile.latent_dim, generator=g), torch.randn(6, ws.profile.latent_dim, generator=g)
fig = plots.image_grid(explore.interpolate(G, z0, z1, steps=10), nrow=10,
                       title="G((1 - t) z0 + t z1), t = 0 ... 1 (one row per pair)")
"""),
        md("""
## How good are the samples? Two numbers

Pictures can flatter a GAN. We use the paper's classifier C (trained in chapter 04; loaded or
trained here) as a judge: on 10,000 generated digits, does it see all ten classes, and how sure is
it? We compare with the same numbers on real test digits. Then a memorisation check: the distance
of each sample to its nearest training image, against the same distance for real test digits.
"""),
        code("""
C, _ = ws.classifier()
n_gen = 10_000 if ws.profile.name != "smoke" else 1_000
fake = generate(G, n_gen, seed=seed + 3)
x_te, y_te = ws.test_set()
q_fake, q_real = explore.sample_quality(C, fake), explore.sample_quality(C, x_te)
print(f"mean confidence of C: generated {q_fake['mean_confidence']:.3f} (n = {q_fake['n']:,}), "
      f"real test digits {q_real['mean_confidence']:.3f} (n = {q_real['n']:,})")
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar([c - 0.2 for c in range(10)], q_fake["class_share"], width=0.4, label=f"generated (n = {q_fake['n']:,})")
ax.bar([c + 0.2 for c in range(10)], q_real["class_share"], width=0.4, label=f"real test (n = {q_real['n']:,})")
ax.set(xticks=range(10), xlabel="class predicted by C", ylabel="share of images", title="Class coverage of G")
ax.legend();
"""),
        code("""
x_tr, _ = ws.train_set()
d_fake = explore.nearest_neighbour_distance(fake[:500], x_tr)
d_real = explore.nearest_neighbour_distance(x_te[:500], x_tr)
print(f"median L2 distance to the nearest training image: generated {d_fake.median():.2f}, "
      f"real test digits {d_real.median():.2f} (n = 500 each; pixel values in [0, 1])")
"""),
        md("""
*How to read it:* if G covered the classes well, every bar is near 10% (the real bars show the
test set's own shares). If G had memorised its training set, generated digits would sit much
closer to a training image than fresh test digits do; similar medians mean G draws new digits.

## Summary

- G maps 30 numbers to a digit; it is trained by the DCGAN game and then frozen for the rest of
  the book.
- Loss curves of a GAN oscillate; the class coverage, the classifier's confidence and the
  nearest-neighbour distance say more about sample quality than the losses do.
- Any digit style G cannot draw is out of EGAN's reach: keep this in mind when reading its
  clean accuracy in chapter 06.

## Exercises

1. Retrain with `ws.profile.replace(gan_epochs=2)` (pass it to `el.setup`) and compare the class
   coverage. Which classes does an under-trained G miss first?
2. Interpolate between two latents that C labels 1 and 7. Where along the line does C change its
   mind, and does the image look ambiguous there?

**What's next?** Chapter 03 trains the encoder E that inverts G.
"""),
    ]
