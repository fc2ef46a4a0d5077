"""Accuracy under attacks that know the defense (chapter 07, "beyond the paper"), and the checks an
evaluation owes its reader.

The paper evaluates every defense in the *oblivious* (gray-box) threat model: FGSM's gradient is
taken through the classifier C alone and the defense then purifies that fixed x_adv. A defense that
only works because the attacker ignores it is not a defense (Athalye, Carlini & Wagner, ICML 2018;
Carlini et al., "On Evaluating Adversarial Robustness", 2019).

``whitebox_accuracy``   PGD/FGSM through C(purify(x)): "adaptive-pgd", or "adaptive-bpda" for a
                        non-differentiable purifier.
``oblivious_pgd``       PGD through C alone, then every defense purifies the same x_adv.
``convergence_check``   does doubling steps or restarts still lower the accuracy?
``guessing_bound_demo`` why no defense beats guessing at eps >= 0.5.

The accuracy reported is always measured on the *deployed* pipeline, C(defense.purify(x_adv)),
never on the attacker's own forward pass; for a randomised defense this is a fresh draw.
"""
from __future__ import annotations

import numbers

import torch

from .._validate import (check_callable, check_eps, check_eps_list, check_images, check_labels,
                         check_positive_float, check_positive_int)
from ..attacks.base import THREAT_ADAPTIVE_LATENT, THREAT_OBLIVIOUS_PGD, check_defense, predict, purify_batched
from ..attacks.autoattack import STANDARD as AUTOATTACK_STANDARD, VERSION as AUTOATTACK_VERSION, autoattack
from ..attacks.bpda import through
from ..attacks.eot import eot
from ..attacks.fgsm import fgsm_through
from ..attacks.latent import latent_path_attack
from ..attacks.pgd import pgd
from ..torch_utils import plain
from .stats import accuracy_summary


def attack_precision(bf16: bool, fold: bool = False) -> str:
    """How the attacker computes, as a result records it."""
    if bf16:
        return "bf16 autocast, BatchNorm folded, channels_last"
    return "fp32, BatchNorm folded, channels_last" if fold else "fp32"


def whitebox_accuracy(defense, classifier, x: torch.Tensor, y: torch.Tensor, eps_values, *, attack: str = "pgd",
                      steps: int = 40, restarts: int = 1, step_size: float | None = None, random_start: bool = True,
                      seed: int = 0, bpda="auto", loss: str = "ce", batch_size: int = 256, device=None,
                      return_adv: bool = False, progress: bool = False, eot_samples: int = 1,
                      attack_bf16: bool = False, confidence: float | None = None, attacker=None,
                      attack_fold: bool = False) -> dict:
    """Accuracy of the defended classifier under an attack that goes *through* the defense.

    Threat model: white-box. The attacker knows the weights of the purifier and of C and attacks
    x -> C(purify(x)) (:func:`through`): exact gradients for a differentiable defense
    ("adaptive-pgd"; EGAN: through C(G(E(x)))), BPDA for a non-differentiable one ("adaptive-bpda").
    ``attack``: "pgd" (Madry et al. 2018; ``steps``, ``restarts``, ``step_size``), "fgsm"
    ("adaptive-fgsm" / "adaptive-bpda-fgsm") or "autoattack" (standard AutoAttack from torchattacks on the
    same attacked function) or "latent" (the latent-path attack on an EGAN-like defense:
    ``egan_lib.attacks.latent``). ``eot_samples`` > 1 (a randomised defense with ``reseeded(seed)``, e.g.
    Defense-GAN's random restarts): the attack follows the expected prediction over that many draws of
    the defense's randomness (EOT); the deployed defense is then evaluated with its own draw.
    The result also holds ``correct``: {eps: per-image outcomes}, for the worst case over attacks.
    ``attack_bf16``: the attacker computes its gradients under bf16 autocast (about twice as fast on CPUs
    with native bf16); every x_adv is still judged by the defense as deployed (``purify``, its precision).
    ``attack_fold``: the attacker runs fp32 copies of the networks with BatchNorm folded, in channels_last
    (the deployed function up to float rounding, about 1.6x faster on CPUs; on CPUs that only emulate bf16
    it replaces ``attack_bf16``, which is many times slower there); ``attack_bf16`` folds as well.
    ``confidence``: PGD's stopping margin (:func:`pgd`); default 0 in fp32 and 1 logit under ``attack_bf16``
    (bf16 logits differ from fp32 ones by up to about 0.5 on EGAN, so a margin of 0 would stop images
    that the deployed pipeline still classifies right); with EOT or a surrogate ``attacker``, inf (no early
    stop: a random draw or a surrogate that misclassifies says little about the deployed defense).
    After every PGD restart the deployed pipeline judges each image's best iterate (``pgd``'s ``judge``):
    ``correct_after_restart`` is its verdict after restart 1, 2, ..., and an image it still classifies
    right is attacked again.
    ``attacker``: the defense the attacker differentiates through (BPDA's forward pass, EOT's draws) when it
    is not the deployed one, e.g. Defense-GAN with a shorter search as a cheaper surrogate of L = 200,
    R = 10; the deployed ``defense`` still judges every x_adv. Default: the deployed defense itself.

    Evaluation: for each eps, accuracy = mean(argmax C(defense.purify(x_adv)) == y) on all n images,
    with its Wilson 95% interval. Returns ``{"threat_model", "accuracy": {eps: float},
    "ci95": {eps: [lo, hi]}, "n", "defense", "attack": {...}}`` (+ ``"adv": {eps: x_adv}``).
    """
    check_defense(defense)
    x = check_images(x)
    y = plain(check_labels(y, n=x.shape[0]))
    x = plain(x)
    eps_values = check_eps_list(eps_values, sorted_unique=False)
    if attack not in ("pgd", "fgsm", "autoattack", "latent"):
        raise ValueError(f"attack: expected 'pgd', 'fgsm', 'autoattack' or 'latent', got {attack!r}")
    batch_size = check_positive_int(batch_size, "batch_size")
    eot_samples = check_positive_int(eot_samples, "eot_samples")
    if not isinstance(attack_bf16, bool):
        raise TypeError(f"attack_bf16: expected True or False, got {attack_bf16!r}")
    if not isinstance(attack_fold, bool):
        raise TypeError(f"attack_fold: expected True or False, got {attack_fold!r}")
    if confidence is None:
        # a random (EOT) or surrogate attacker cannot tell from its own function whether the deployed
        # defense is fooled: it runs every step, and the deployed defense judges after each restart
        confidence = float("inf") if eot_samples > 1 or attacker is not None else 1.0 if attack_bf16 else 0.0
    att = defense
    if attacker is not None:
        check_defense(attacker, "attacker")
        att = attacker
    fn = through(att, classifier, bpda=bpda, bf16=attack_bf16, fold=attack_fold)
    name = getattr(defense, "name", type(defense).__name__)
    if eot_samples > 1:
        if not callable(getattr(att, "reseeded", None)):
            raise TypeError(f"eot_samples: {fn.name} has no reseeded(seed) (it is not a randomised defense)")
        base = int(getattr(att, "seed", 0)) + 1_000_003
        fn = eot(lambda k: through(att.reseeded(base + k), classifier, bpda=bpda, bf16=attack_bf16,
                                   fold=attack_fold),
                 eot_samples)
    tm = {"pgd": fn.threat_model, "autoattack": fn.threat_model, "latent": THREAT_ADAPTIVE_LATENT,
          "fgsm": "adaptive-bpda-fgsm" if fn.uses_bpda else "adaptive-fgsm"}[attack]
    correct, adv, by_restart, disagree = {}, {}, {}, {}
    from tqdm.auto import tqdm
    for e in tqdm(eps_values, desc=f"{attack} through {fn.name}", disable=not progress, leave=False):
        fooled = None
        if attack == "pgd":
            def judge(xa, rows):        # the deployed pipeline's verdict after each restart
                return predict(classifier, purify_batched(defense, xa, batch_size), batch_size=batch_size,
                               device=device).cpu() == y.cpu()[rows]
            xa, det = pgd(fn, x, y, e, steps=steps, step_size=step_size, random_start=random_start,
                          restarts=restarts, seed=seed, batch_size=batch_size, device=device, loss=loss,
                          return_details=True, confidence=confidence, judge=judge)
            fooled = det["fooled"]
        elif attack == "autoattack":
            xa = autoattack(fn, x, y, e, seed=seed, batch_size=batch_size, device=device)
        elif attack == "latent":
            xa, det = latent_path_attack(att, classifier, x, y, e, steps=steps, restarts=restarts, seed=seed,
                                         batch_size=batch_size, bf16=attack_bf16, fold=attack_fold,
                                         device=device)
            det["attacker_disagrees"] = torch.zeros_like(det["fooled"])
            fooled = det["fooled"]
        else:
            xa = fgsm_through(fn, x, y, e, batch_size=batch_size, device=device, loss=loss)
        pred = predict(classifier, purify_batched(defense, xa, batch_size), batch_size=batch_size, device=device)
        correct[e] = pred == y.cpu()
        if fooled is not None:
            # the deployed pipeline's verdict after each restart (pgd's judge); ``attacker_disagrees``: images
            # the attacker stopped (its own function misclassified them by the margin) that the deployed
            # defense still classified right, so they were attacked again
            by_restart[e] = ~det["fooled_after_restart"]
            by_restart[e][-1] = correct[e]
            disagree[e] = int(det["attacker_disagrees"].sum())
        if return_adv:
            adv[e] = xa
    params = {"attack": attack, "loss": {"autoattack": "standard ensemble", "latent": "latent distance"}.get(attack, loss),
              "bpda": fn.uses_bpda, "batch_size": batch_size, "eot_samples": eot_samples,
              "attack_precision": attack_precision(attack_bf16, attack_fold)}
    if attacker is not None:
        params["attacker_defense"] = attacker.settings() if callable(getattr(attacker, "settings", None)) \
            else getattr(attacker, "name", type(attacker).__name__)
    if attack == "autoattack":
        params.update(version="standard", library="torchattacks " + AUTOATTACK_VERSION, seed=seed,
                      components={k: dict(v) for k, v in AUTOATTACK_STANDARD.items()})
    if attack == "latent":
        params.update(steps=steps, restarts=restarts, seed=seed, step_size="2.5*eps/steps",
                      restart_verdict="deployed pipeline, after each restart")
    if attack == "pgd":
        params.update(steps=steps, restarts=restarts, random_start=random_start, seed=seed,
                      confidence=confidence if confidence != float("inf") else "none (every step is run)",
                      restart_verdict="deployed pipeline, after each restart",
                      step_size=("2.5*eps/steps" if step_size is None else float(step_size)))
    res = accuracy_summary(correct, tm, defense=name, attack=params)
    res["correct"] = correct
    if by_restart:
        res["correct_after_restart"] = by_restart
        res["attacker_disagrees"] = disagree
    if return_adv:
        res["adv"] = adv
    return res


def oblivious_pgd(defense, classifier, x: torch.Tensor, y: torch.Tensor, eps_values, *, steps: int = 40,
                  restarts: int = 1, step_size: float | None = None, random_start: bool = True, seed: int = 0,
                  loss: str = "ce", batch_size: int = 256, device=None, return_adv: bool = False,
                  progress: bool = False):
    """PGD through the classifier alone, then purify: the paper's oblivious (gray-box) threat model
    with PGD (Madry et al. 2018) instead of FGSM (threat model "oblivious-pgd").

    x_adv is computed once per eps from C's gradient and every defense purifies the same x_adv.
    ``defense``: one Defense-like object -> one result dict (as :func:`whitebox_accuracy`); a list
    or dict of them -> {name: result}, all on the same x_adv.
    """
    single = not isinstance(defense, (list, tuple, dict))
    defenses = [defense] if single else list(defense.values() if isinstance(defense, dict) else defense)
    if not defenses:
        raise ValueError("defense: empty list; expected at least one defense")
    for i, d in enumerate(defenses):
        check_defense(d, f"defense[{i}]" if not single else "defense")
    names = [getattr(d, "name", type(d).__name__) for d in defenses]
    if len(set(names)) != len(names):
        raise ValueError(f"defense: duplicate names {names}")
    check_callable(classifier, "classifier")
    x = check_images(x)
    y = plain(check_labels(y, n=x.shape[0]))
    x = plain(x)
    eps_values = check_eps_list(eps_values, sorted_unique=False)
    batch_size = check_positive_int(batch_size, "batch_size")
    correct = {nm: {} for nm in names}
    adv = {}
    from tqdm.auto import tqdm
    for e in tqdm(eps_values, desc="oblivious PGD", disable=not progress, leave=False):
        xa = pgd(classifier, x, y, e, steps=steps, step_size=step_size, random_start=random_start, restarts=restarts,
                 seed=seed, batch_size=batch_size, device=device, loss=loss)
        adv[e] = xa
        for nm, d in zip(names, defenses):
            correct[nm][e] = predict(classifier, purify_batched(d, xa, batch_size), batch_size=batch_size, device=device) == y.cpu()
    params = {"attack": "pgd", "loss": loss, "steps": steps, "restarts": restarts, "random_start": random_start,
              "seed": seed, "step_size": "2.5*eps/steps" if step_size is None else float(step_size),
              "gradient": "classifier alone"}
    out = {}
    for nm in names:
        out[nm] = accuracy_summary(correct[nm], THREAT_OBLIVIOUS_PGD, defense=nm, attack=dict(params))
        if return_adv:
            out[nm]["adv"] = adv
    return out[names[0]] if single else out


def convergence_check(fn_accuracy, base_steps: int, base_restarts: int, *, tolerance: float = 0.01) -> dict:
    """Is the attack converged? Run ``fn_accuracy(steps, restarts)`` at (steps, restarts),
    (2 * steps, restarts) and (steps, 2 * restarts) and compare (Carlini et al. 2019, "On Evaluating
    Adversarial Robustness": an evaluation must show that more iterations / restarts do not help).

    ``fn_accuracy`` returns an accuracy (float in [0, 1]), a dict {eps: accuracy}, or a result dict
    with an "accuracy" entry. Deltas are base - doubled (positive: the stronger attack lowered the
    accuracy). Converged when every |delta| < ``tolerance`` (default 0.01 = one percentage point).
    """
    check_callable(fn_accuracy, "fn_accuracy")
    base_steps = check_positive_int(base_steps, "base_steps")
    base_restarts = check_positive_int(base_restarts, "base_restarts")
    tolerance = check_positive_float(tolerance, "tolerance")

    def acc(steps, restarts):
        a = fn_accuracy(steps, restarts)
        if isinstance(a, dict) and "accuracy" in a:
            a = a["accuracy"]
        if isinstance(a, dict):
            if not a:
                raise ValueError("fn_accuracy: returned an empty {eps: accuracy} dict")
            return {k: float(v) for k, v in a.items()}
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0.0 <= float(a) <= 1.0:
            raise ValueError(f"fn_accuracy: expected an accuracy in [0, 1] or a dict of them, got {a!r}")
        return float(a)

    base = acc(base_steps, base_restarts)
    ds = acc(2 * base_steps, base_restarts)
    dr = acc(base_steps, 2 * base_restarts)

    def delta(a, b):
        if isinstance(a, dict):
            if not isinstance(b, dict) or set(a) != set(b):
                raise ValueError("fn_accuracy: the runs returned different eps keys")
            return {k: a[k] - b[k] for k in a}
        return a - b

    d_steps, d_restarts = delta(base, ds), delta(base, dr)
    flat = [abs(v) for d in (d_steps, d_restarts) for v in (d.values() if isinstance(d, dict) else [d])]
    worst = max(flat)
    converged = worst < tolerance
    msg = (f"converged: doubling steps ({base_steps} -> {2 * base_steps}) or restarts ({base_restarts} -> "
           f"{2 * base_restarts}) changes accuracy by at most {100 * worst:.2f} points (< {100 * tolerance:g})"
           if converged else
           f"NOT converged: doubling steps ({base_steps} -> {2 * base_steps}) or restarts ({base_restarts} -> "
           f"{2 * base_restarts}) changes accuracy by up to {100 * worst:.2f} points (>= {100 * tolerance:g}); "
           "the reported accuracy is only an upper bound - run the stronger attack")
    return {"base": base, "double_steps": ds, "double_restarts": dr, "delta_steps": d_steps,
            "delta_restarts": d_restarts, "max_abs_delta": worst, "tolerance": tolerance,
            "converged": converged, "message": msg, "base_steps": base_steps, "base_restarts": base_restarts}


def guessing_bound_demo(x: torch.Tensor, y: torch.Tensor, eps: float = 0.5, *, classifier=None, defense=None,
                        num_classes: int = 10, batch_size: int = 256, device=None) -> dict:
    """Why no defense can exceed guessing at eps >= 0.5 (L-inf, pixels in [0, 1]).

    Every pixel value v in [0, 1] satisfies |v - 0.5| <= 0.5, so *every* image lies within
    L-inf distance 0.5 of the constant gray image g = 0.5. An attacker with eps >= 0.5 can submit
    g for every input, whatever its class. Any (deterministic) defended classifier maps g to one
    class c, so its accuracy is the frequency of c among the labels: at most the largest class
    frequency (MNIST test set: digit 1, 1135 / 10000 = 11.35%). A randomised defense does no better
    in expectation. This holds in every threat model (even a black-box attacker who knows nothing).

    Returns {"gray": (1, 1, 28, 28) tensor of 0.5, "x_adv": g for every image (N, 1, 28, 28),
    "max_linf": max_i ||x_i - g||_inf (<= 0.5), "bound": max class frequency, "majority_class",
    "class_frequency": list, "eps"}; with a ``classifier`` (and optionally a ``defense``):
    "predicted_class" of (purified) g and "accuracy" = the accuracy the attack leaves (<= bound).
    """
    x = check_images(x)
    num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
    y = check_labels(y, n=x.shape[0], num_classes=num_classes)
    eps = check_eps(eps)
    if eps < 0.5:
        raise ValueError(f"eps: the guessing bound needs eps >= 0.5 (then every pixel can reach 0.5), got {eps}")
    gray = torch.full((1, 1, 28, 28), 0.5, dtype=x.dtype)
    freq = torch.bincount(y.cpu(), minlength=num_classes).float() / y.numel()
    res = {"gray": gray, "x_adv": gray.expand_as(x).clone(), "max_linf": float((x.detach().cpu() - 0.5).abs().max()),
           "bound": float(freq.max()), "majority_class": int(freq.argmax()), "class_frequency": freq.tolist(),
           "eps": eps}
    if classifier is not None:
        g = purify_batched(defense, gray, 1) if defense is not None else gray
        c = int(predict(classifier, g.float(), batch_size=batch_size, device=device)[0])
        res["predicted_class"] = c
        res["accuracy"] = float(freq[c])
    return res


def worst_case(per_attack: dict) -> dict:
    """The per-image worst case over attacks run on the same images: an image counts as defended at an
    eps only if *every* attack run at that eps failed on it. ``per_attack``: {label: result with
    ``correct`` {eps: (n,) bool}} (as ``whitebox_accuracy`` returns); an attack may cover only some eps
    (AutoAttack at 0.3 alone, say): each eps takes the attacks that ran there. Returns the accuracy
    summary (threat model "worst-case") plus ``per_attack`` accuracies {label: {eps: acc}},
    ``attacks_at`` {eps: [labels]} and ``decisive``: {eps: {label: images only this attack broke}}, so a
    reader sees which attack did the work. A cascaded result (``egan_lib.eval.cascade``: it holds
    ``attacked`` {eps: the images it ran on}) is the worst case through it, and its ``decisive`` count
    is the images it broke among those it ran on; ``cascaded`` lists those labels."""
    if not isinstance(per_attack, dict) or not per_attack:
        raise ValueError("per_attack: expected a non-empty {attack label: result} dict")
    for label, r in per_attack.items():
        if not isinstance(r, dict) or not isinstance(r.get("correct"), dict) or not r["correct"]:
            raise ValueError(f"per_attack[{label!r}]: expected a result with per-image 'correct' outcomes")
    ns = {label: next(iter(r["correct"].values())).numel() for label, r in per_attack.items()}
    if len(set(ns.values())) != 1:
        raise ValueError(f"per_attack: the attacks ran on different numbers of images {ns}; use the same images")
    n = next(iter(ns.values()))
    eps_all = sorted({e for r in per_attack.values() for e in r["correct"]})
    correct, decisive, attacks_at = {}, {}, {}
    for e in eps_all:
        labels = [label for label, r in per_attack.items() if e in r["correct"]]
        stack = torch.stack([per_attack[label]["correct"][e].bool() for label in labels])
        correct[e] = stack.all(0)
        broken_by = ~stack
        only = broken_by & (broken_by.sum(0, keepdim=True) == 1)
        decisive[e] = {label: int(only[i].sum()) if "attacked" not in per_attack[label] else
                       int((per_attack[label]["attacked"][e].bool() & broken_by[i]).sum())
                       for i, label in enumerate(labels)}
        attacks_at[e] = labels
    res = accuracy_summary(correct, "worst-case", attacks=list(per_attack))
    res["per_attack"] = {label: {e: int(r["correct"][e].sum()) / n for e in sorted(r["correct"])}
                         for label, r in per_attack.items()}
    res["attacks_at"] = attacks_at
    res["decisive"] = decisive
    res["cascaded"] = [label for label, r in per_attack.items() if "attacked" in r]
    res["correct"] = correct
    return res
