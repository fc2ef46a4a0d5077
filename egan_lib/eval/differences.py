"""Why our numbers differ from the paper's: what the paper leaves open, what we chose, and the evidence.

The paper's figures come from a run whose training budgets, sample sizes and baseline settings it
does not state. ``differences_rows`` lists each such choice with the paper's words, the value this
run used (read from the profile and the results, never typed) and the measurement behind it;
``clipped_share`` measures one of them (how much FGSM's clipping to [0, 1] matters).
"""
from __future__ import annotations

import torch

from .._validate import check_eps, check_images, check_labels, check_module
from ..attacks.base import device_of
from .stats import wilson_interval


def clipped_share(classifier, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    """Share of pixels that one FGSM step of size eps would push outside [0, 1] (and that clipping
    therefore changes): on MNIST mostly background pixels at 0 pushed below 0."""
    check_module(classifier, "classifier")
    x = check_images(x, "x")
    y = check_labels(y, n=x.shape[0], name="y")
    eps = check_eps(eps, "eps")
    dev = device_of(classifier, None)
    xg = x.to(dev).clone().requires_grad_(True)
    loss = torch.nn.functional.nll_loss(classifier(xg), y.to(dev), reduction="sum")
    (grad,) = torch.autograd.grad(loss, xg)
    moved = x.to(dev) + eps * grad.sign()
    return float(((moved < 0) | (moved > 1)).float().mean())


def _interval_width(n: int, p: float = 0.8) -> float:
    lo, hi = wilson_interval(int(round(p * n)), n)
    return 100 * (hi - lo) / 2


def differences_rows(profile, results: dict, *, budget_findings: dict | None = None,
                     clipped: dict | None = None, n_test_paper: int = 10_000) -> list[dict]:
    """Rows {item, paper, ours, evidence} for the chapter's table. ``profile``: the run's Profile;
    ``results``: its results object (``Results.to_json_dict``, with per-method settings);
    ``budget_findings``: ``egan_lib.studies.budget_report.encoder_findings`` of the budget study;
    ``clipped``: {eps: clipped_share}."""
    p = profile
    meth = results["methods"]
    setting = lambda m, k, default=None: meth.get(m, {}).get("settings", {}).get(k, default)  # noqa: E731
    n_main = max(v.get("n", results["n_test"]) for v in meth.values())
    n_dg = meth.get("Defense-GAN", {}).get("n", n_main)
    parts = len(next(iter(meth.values())).get("parts", {}).get("n", [0])) or 1
    rows = []
    budget = (f"{p.enc_image_steps:,} image-steps ({p.enc_image_steps // p.enc_batch:,} steps of {p.enc_batch})"
              if p.enc_image_steps else f"{p.enc_epochs} epochs of batches of {p.enc_batch}")
    ev = "chapter 03's budget study"
    if budget_findings:
        a, b = budget_findings["first"], budget_findings["last"]
        ev = (f"chapter 03: from {a['image_steps']:,} to {b['image_steps']:,} image-steps EGAN's clean accuracy "
              f"went from {a['clean']} to {b['clean']} and at eps 0.3 from {a['eps03']} to {b['eps03']} "
              "(%, 95% Wilson interval, oblivious FGSM, n = 1,000)")
    rows.append({"item": "E's training: T, optimiser, schedule, budget",
                 "paper": "T latents, SGD, 'the maximum number of epochs': none of them given",
                 "ours": f"T = {p.enc_latents:,}, Adam lr {p.enc_lr}, {p.enc_schedule} schedule, {budget}",
                 "evidence": ev})
    rows.append({"item": "G's training", "paper": "a DCGAN; epochs not given",
                 "ours": f"{p.gan_epochs} epochs, batch {p.gan_batch}, Adam {p.gan_lr}",
                 "evidence": "chapter 03's G table (class coverage and EGAN's clean accuracy by epochs)"})
    rows.append({"item": "test images", "paper": f"the MNIST test set ({n_test_paper:,} images); n per method not given",
                 "ours": f"{n_main:,} class-balanced test images in {parts} disjoint parts; Defense-GAN on {n_dg:,}",
                 "evidence": f"a 95% interval at 80% accuracy is +/- {_interval_width(n_main):.1f} points at n = "
                             f"{n_main:,} and +/- {_interval_width(n_dg):.1f} at n = {n_dg:,}"})
    if "Defense-GAN" in meth:
        rows.append({"item": "Defense-GAN's search", "paper": "not given (Samangouei et al.: L = 200 steps, R = 10 restarts)",
                     "ours": f"L = {setting('Defense-GAN', 'L_steps')}, R = {setting('Defense-GAN', 'R_restarts')}, "
                             f"lr {setting('Defense-GAN', 'lr')}",
                     "evidence": f"{1000 * meth['Defense-GAN']['seconds_per_image']:.0f} ms per image in this run"})
    if "PixelDefend" in meth:
        e = setting("PixelDefend", "eps_def", p.pixeldefend_eps)
        rows.append({"item": "PixelDefend's eps_defend", "paper": "not given",
                     "ours": f"{255 * float(e):.0f}/255 (Song et al.'s value for Fashion-MNIST), on our own small "
                             "PixelCNN",
                     "evidence": "chapter 05 (bits per dimension of the PixelCNN)"})
    if "APE-GAN" in meth:
        rows.append({"item": "APE-GAN's training eps", "paper": "not given",
                     "ours": f"{p.apegan_train_eps} (the APE-GAN paper's MNIST value), {p.apegan_epochs} epochs",
                     "evidence": "a purifier trained at one eps is tested here at every eps"})
    if "DnCNN" in meth:
        rows.append({"item": "DnCNN's training", "paper": "not given",
                     "ours": f"{p.dncnn_layers} layers x {p.dncnn_channels}, {p.dncnn_epochs} epochs on "
                             f"{p.dncnn_train_size or 60_000:,} images (FGSM and Gaussian noise pairs)",
                     "evidence": "chapter 05's DnCNN budget benchmark: more epochs gave more accuracy"})
    if "AutoEncoder" in meth:
        rows.append({"item": "AutoEncoder's training", "paper": "not given (MagNet: 100 epochs)",
                     "ours": f"{p.ae_epochs} epochs at lr {p.ae_lr}", "evidence": "chapter 05 (its loss curve)"})
    clip_ev = "-"
    if clipped:
        clip_ev = "; ".join(f"at eps {e:.2f}, {100 * s:.0f}% of the pixels leave [0, 1] before clipping"
                            for e, s in sorted(clipped.items()))
    rows.append({"item": "clipping x + eps sign(grad) to [0, 1]", "paper": "not said",
                 "ours": "clipped (an image outside [0, 1] is not an image)", "evidence": clip_ev})
    if "Original" in meth:
        rows.append({"item": "the classifier C", "paper": "99% on clean images",
                     "ours": f"{100 * meth['Original']['accuracy']['0.00']:.1f}% on our subset (n = "
                             f"{meth['Original'].get('n', n_main):,})",
                     "evidence": "chapter 04"})
    return rows


def differences_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    if not rows:
        raise ValueError("rows: nothing to show")
    out = ["| choice | the paper | this run | evidence |", "|---|---|---|---|"]
    out += [f"| {r['item']} | {r['paper']} | {r['ours']} | {r['evidence']} |" for r in rows]
    return "\n".join(out)
