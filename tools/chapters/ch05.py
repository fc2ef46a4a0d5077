def build(header, setup_cell, md, code):
    return header("05", "The five baselines, as published", "05_baselines") + [
        md("""
## Overview

The paper compares EGAN with five published purifiers. A comparison is only as honest as its
baselines, so each one here is the published method (architecture, loss, purification procedure)
at a scale a 2-core CPU can run; where the paper leaves a training choice open, this chapter says
what we chose and why.

**What you will learn**

1. How each baseline purifies an image, and what it is trained on.
2. The training choices the EGAN paper leaves open, with the source we follow for each.
3. What each purifier does to clean and attacked digits.

| Prerequisite | Importance | Notes |
|---|---|---|
| Chapters 02-04 | necessary | G, E, C and FGSM |
| Residual learning, autoregressive models | helpful | DnCNN, PixelCNN |

Time: about 11 minutes to train all baselines on 2 idle CPU cores (cpu profile), seconds when loaded.

## The seven methods

| method | purification | trained on | source |
|---|---|---|---|
| Original | none (identity) | - | - |
| EGAN | G(E(x)) | E on generated digits (chapter 03) | {cite}`perezbravo2022egan` |
| DnCNN | x - f(x): a 17-layer CNN predicts the perturbation | pairs (attacked, clean) | {cite}`zhang2017dncnn` |
| AutoEncoder | decode(encode(x)) through a bottleneck | clean + noisy digits | {cite}`meng2017magnet` |
| APE-GAN | a generator maps attacked digits to clean ones | FGSM examples of the training set | {cite}`jin2019apegan` |
| PixelDefend | each pixel, in raster order, set to its most likely value within eps_def | a PixelCNN on clean digits | {cite}`song2018pixeldefend`, {cite}`vandenoord2016pixelcnn` |
| Defense-GAN | G(z*), z* = best of R restarts of L gradient steps on the distance to x | the same G as EGAN | {cite}`samangouei2018defensegan` |
"""),
        setup_cell("from egan_lib import defenses as dfn\nfrom egan_lib.evaluate import evaluate\n"),
        code("""
C, _ = ws.classifier()
G, _ = ws.generator()
E, _ = ws.encoder()
p = ws.profile
"""),
        md("""
## DnCNN

Zhang et al. {cite}`zhang2017dncnn` train a deep CNN to output the *noise* of an image (residual
learning): the clean estimate is the input minus the prediction. Architecture as published: one
convolution + ReLU, then convolution + batch norm + ReLU layers, then a convolution back to one
channel; 17 layers of 64 channels.

*Training choices (the EGAN paper says only "predicts the noise").* Training pairs (y, x): for each
training digit a coin picks either FGSM against C with eps drawn uniformly from [0, 0.3] (the range
the comparison attacks), or Gaussian noise with sigma uniform in [0, 55/255] (DnCNN-B's blind
range); the loss is DnCNN's 1/2 ||f(y) - (y - x)||^2, optimised with Adam and a cosine decay. The
`cpu` profile trains the published 17 x 64 network for 468 steps (5,000 digits, 6 epochs; the
paper profile: the full set, 10 epochs). That is still far less than DnCNN's own training, and it
matters: `benchmarks/dncnn_budget.py` trains the same network for 2 and for 6 epochs and attacks
both (results in `benchmarks/results/dncnn_budget_cpu.json`, measured on a 2-core AMD EPYC). At
eps = 0.1, 2 epochs gave 54.3% [48.7, 59.9] and 6 epochs 78.7% [73.7, 82.9] (n = 300, 95% Wilson
intervals), so the profile uses 6. A single training run is noisy, though: the same settings
trained again land elsewhere (the book's own 6-epoch DnCNN is the one chapter 06 measures, and the
2-epoch net of the earlier reference run reached 44%: `book/results/mnist-cpu.json` at commit
dda4270), so only gaps well beyond ten points say much.
The loss was still falling: read DnCNN's curve in chapter 06 as a lower bound on what the published
method can do.
"""),
        code("""
dncnn, h_dncnn = dfn.get_dncnn(ws)
print(f"DnCNN: {p.dncnn_layers} layers x {p.dncnn_channels} channels, "
      f"{el.models.count_parameters(dncnn):,} parameters; {ws.timings['dncnn']['status']}")
"""),
        md("""
## AutoEncoder

A convolutional encoder-decoder with a bottleneck, in the style of MagNet's MNIST reformer
{cite}`meng2017magnet`: the bottleneck cannot carry every detail, so a small perturbation is
dropped on the way through.

*Training choices.* MagNet's MNIST reformer "I" as in the authors' code: 3x3 convolutions with 3
channels and sigmoid activations, one average-pooling bottleneck, trained with MSE to map
clean + Gaussian noise of "volume" 0.1 back to the clean digit, Glorot initialisation (with
PyTorch's default the net got stuck at the mean image). MagNet trains 100 epochs at lr 1e-3; the
`cpu` profile trains 8 epochs at lr 1e-2, after which the loss was flat.
"""),
        code("""
ae, h_ae = dfn.get_autoencoder(ws)
print(f"AutoEncoder: {el.models.count_parameters(ae):,} parameters; {ws.timings['autoencoder']['status']}")
"""),
        md("""
## APE-GAN

Jin et al. {cite}`jin2019apegan` train a generator to map an adversarial example back to its
clean image, with the loss 0.7 x MSE + 0.3 x adversarial (a discriminator judges the outputs),
on FGSM examples of the training set made against the classifier.

*Training choices.* Architecture and optimiser as in the authors' public MNIST code: two strided
convolutions and two transposed convolutions (batch norm, LeakyReLU / ReLU), a tanh output
rescaled to [0, 1]; a strided-convolution discriminator; Adam 2e-4 (beta1 = 0.5), batch 128, two
generator steps per discriminator step, 2 epochs. The training eps is 0.3, the eps of the APE-GAN
paper's MNIST experiments (their code's default is 0.15). The `cpu` profile uses 12,000 of the
60,000 training digits.
"""),
        code("""
apegan, h_ape = dfn.get_apegan(ws)
print(f"APE-GAN generator: {el.models.count_parameters(apegan):,} parameters; trained on FGSM examples at "
      f"eps = {p.apegan_train_eps}; {ws.timings['apegan']['status']}")
"""),
        md("""
## PixelDefend

Song et al. {cite}`song2018pixeldefend` use a PixelCNN {cite}`vandenoord2016pixelcnn`, an
autoregressive model of p(x) = prod_i p(x_i | x_<i) with a 256-way softmax per pixel. To purify,
they walk the pixels in raster order and set each to its most likely value within
[x_i - eps_def, x_i + eps_def] given the pixels already purified. The PixelCNN's quality is its
negative log-likelihood on test digits, in bits per dimension (lower is better).

*Choices.* PixelDefend used a PixelCNN++; we use the original masked-convolution PixelCNN (a 7x7
type-A layer, residual 3x3 type-B layers, 256-way softmax), 32 channels x 5 layers trained for one
epoch on 12,000 digits in the `cpu` profile. eps_def = 32/255, the value Song et al. use for
Fashion-MNIST (grey-scale 28x28, like MNIST). Purification is exact and fast: each layer's
activations are updated incrementally as the pixels are set in raster order, so a whole
purification costs about one network pass per image instead of 784 (a test checks that the
incremental logits equal a full forward pass).
"""),
        code("""
pixelcnn, h_pix = dfn.get_pixelcnn(ws)
print(f"PixelCNN: {p.pixelcnn_layers} layers x {p.pixelcnn_channels} channels, "
      f"{el.models.count_parameters(pixelcnn):,} parameters; test NLL {h_pix['test_bits_per_dim']:.3f} bits/dim "
      f"(n = {h_pix.get('test_n', 'see chapter text')}); {ws.timings['pixelcnn']['status']}; eps_def = {p.pixeldefend_eps}")
"""),
        code("""
fig, axes = plt.subplots(1, 4, figsize=(15, 3))
for ax, (name, h) in zip(axes, [("DnCNN", h_dncnn), ("AutoEncoder", h_ae), ("APE-GAN", h_ape), ("PixelCNN", h_pix)]):
    keys = [k for k in h if "loss" in k and isinstance(h[k], list) and len(h[k]) > 0][:2]
    plots.plot_curves(h, keys, ax=ax, xlabel="logged step", ylabel="training loss", title=name)
fig.tight_layout()
"""),
        md("""
## Defense-GAN

Samangouei et al. {cite}`samangouei2018defensegan` search the latent space of the same G that
EGAN uses: R random starts, L gradient steps each on ||G(z) - x||^2, keep the z with the smallest
distance. The R restarts run in parallel as one batch. The paper's values are L = 200 and R = 10;
the profile's values are printed below. The optimiser follows the authors' code: SGD with
momentum 0.7 and learning rate 10 on the per-pixel mean squared error (their code's planned decay
never fires); z starts from N(0, I), the prior our G was trained with.
"""),
        code("""
methods = dfn.get_defenses(ws)
print("L =", methods["Defense-GAN"].steps, " R =", methods["Defense-GAN"].restarts, " lr =", methods["Defense-GAN"].lr)
print("methods:", ", ".join(methods))
"""),
        md("""
## Before and after: one digit per class

Each method purifies the same ten clean test digits, then the same ten digits attacked with FGSM
at eps = 0.3 (gradient through C alone, as in the paper).
"""),
        code("""
x_te, y_te = ws.test_set()
idx = el.data.one_per_class(y_te)
demo = evaluate(C, list(methods.values()), x_te[idx], y_te[idx], [0.0, 0.3], timing_repeats=1, timing_batch=10)
fig = plots.plot_examples(demo.examples, eps=0.0, title="Clean digits and each method's output (labels: C's prediction)")
"""),
        code("""
fig = plots.plot_examples(demo.examples, eps=0.3, title="FGSM eps = 0.3: attacked digits and each method's output")
"""),
        md("""
*What to see:* on clean digits, the denoisers (DnCNN, AutoEncoder, APE-GAN) return nearly the
input; the generative methods (EGAN, Defense-GAN) return the closest digit G can draw, sometimes
visibly different. On attacked digits, look at the background: which methods remove the grey
noise, and which keep the digit's identity while doing so? Ten digits are an illustration, not a
measurement: chapter 06 measures.

## Summary

- Each baseline is the published method at a scale this machine can run; the profile's numbers,
  printed above, say how far it is from the published scale.
- DnCNN, the AutoEncoder and APE-GAN learn a map from perturbed to clean images; PixelDefend and
  Defense-GAN search for a nearby image that their generative model finds likely.
- Per image, PixelDefend needs one PixelCNN pass per pixel and Defense-GAN L x R generator passes:
  `python benchmarks/bench_defenses.py` measures every method on the same batch.

## Exercises

1. Raise PixelDefend's eps_def to 0.3 and purify the attacked digits at eps = 0.3 again. What
   happens to the clean digits?
2. Run Defense-GAN with L = 25 and L = 200 on the same ten attacked digits. How does the distance
   ||G(z*) - x|| change, and does C's answer?

**What's next?** Chapter 06 puts all seven in front of the classifier and measures.
"""),
    ]
