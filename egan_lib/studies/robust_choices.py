"""How to train the robust encoder: the study behind the profile's ``robust_*`` choices (chapter 08).

Label-free adversarial training of E has four knobs the issue leaves to measurement: the training
eps of the inner PGD, its number of steps, the share of each batch left clean, and the inner
objective (reconstruction error or latent distance). The study varies one at a time around a centre
fixed before any number was measured (``robust_study_centre``); the rule below picks among them, and the
profile's ``robust_*`` fields train the pick (EGAN-R, and EGAN-RC's eps, steps and clean share). Each candidate is a short fine-tune of the converged E (``robust_study_image_steps``,
the same for all, from the same E, with the same seed), then EGAN with that encoder is measured on the
first ``robust_study_n`` test images: clean accuracy, and accuracy under white-box PGD through
C(G(E(x))) (``robust_study_attack``) at each eps of ``robust_study_eps``.

Each candidate is one stored piece (``egan_lib.eval.store``) under
``<results>/evaluations/mnist-<profile>-robust-study/``; its short-trained encoder is checkpointed in the
artifacts (resumable), so a stopped study resumes where it stopped.

Rule (``best``): the candidate with the highest mean white-box accuracy over the eps, among those whose
clean accuracy is within ``clean_tolerance`` (2 points) of the best clean accuracy of the study; ties go
to the cheaper training (fewer inner steps). Run:

    python -m egan_lib.studies.robust_choices --profile cpu --threads 2
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

from ..attack_spec import parse_attack
from ..checkpoints import model_sha256

KNOBS = ("eps", "inner_steps", "clean_fraction", "objective")


def centre(profile) -> dict:
    """The study's centre (``robust_study_centre``) as a candidate."""
    return dict(zip(KNOBS, profile.robust_study_centre))


def chosen(profile) -> dict:
    """What the profile trains EGAN-R with (its ``robust_*`` fields), as a candidate."""
    p = profile
    return {"eps": p.robust_eps, "inner_steps": p.robust_inner_steps, "clean_fraction": p.robust_clean_fraction,
            "objective": p.robust_objective}


def candidates(profile) -> list:
    """The centre, then one knob at a time changed to each value of its list in the profile
    (``robust_study_train_eps``, ``robust_study_inner``, ``robust_study_clean``, ``robust_study_objectives``)."""
    p = profile
    base = centre(p)
    out = [dict(base)]
    for knob, values in (("eps", p.robust_study_train_eps), ("inner_steps", p.robust_study_inner),
                         ("clean_fraction", p.robust_study_clean), ("objective", p.robust_study_objectives)):
        for v in values:
            c = {**base, knob: v}
            if c not in out:
                out.append(c)
    return out


def label(c: dict) -> str:
    return f"{c['objective']}, eps {c['eps']:g}, {c['inner_steps']} steps, {c['clean_fraction']:g} clean"


def _slug(c: dict) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{c['objective']}_eps{c['eps']:g}_k{c['inner_steps']}_"
                                           f"clean{c['clean_fraction']:g}")


def study_dir(results_dir, profile_name: str) -> Path:
    return Path(results_dir) / "evaluations" / f"mnist-{profile_name}-robust-study"


def run(ws, results_dir, *, compute_missing: bool = True, reevaluate: bool = False, log=print,
        missing: list | None = None) -> list:
    """[(candidate, result, info)] for every candidate (computed, or reused when stored with the same
    settings). ``compute_missing=False``: a candidate not stored is skipped and its label appended to
    ``missing`` (a chapter that must not start an hour of training)."""
    from ..eval.store import load_or_evaluate
    from ..robust import train_robust_encoder
    p = ws.profile
    G, _ = ws.generator()
    E0, _ = ws.encoder()
    x, y = _data(ws)
    measured = _measured_settings(ws, x, y)
    out = []
    for c in candidates(p):
        settings = {"study": "robust_choices", **c, "image_steps": p.robust_study_image_steps,
                    "batch": p.robust_batch, "lr": p.robust_lr, "schedule": p.robust_schedule,
                    "n_latents": p.robust_latents, "bf16": p.robust_bf16, "seed": ws.seed, **measured}
        path = study_dir(results_dir, p.name) / f"{_slug(c)}.pt"

        def compute(c=c, path=path):
            if not compute_missing:
                raise FileNotFoundError(f"{path}: not computed; python -m egan_lib.studies.robust_choices "
                                        f"--profile {p.name}")
            E = copy.deepcopy(E0)
            state = ws.checkpoint_dir / "robust_study" / f"{_slug(c)}.partial.pt"
            state.parent.mkdir(parents=True, exist_ok=True)
            hist = train_robust_encoder(E, G, eps=c["eps"], image_steps=p.robust_study_image_steps,
                                        inner_steps=c["inner_steps"], objective=c["objective"],
                                        clean_fraction=c["clean_fraction"], n_latents=p.robust_latents,
                                        batch_size=p.robust_batch, lr=p.robust_lr, schedule=p.robust_schedule,
                                        seed=ws.seed, device=ws.device, bf16=p.robust_bf16,
                                        progress=ws.progress, resume=state)
            return {**measure(ws, E, x, y), "train_seconds": hist["seconds"], "loss": hist["loss"],
                    "loss_step": hist["step"]}
        try:
            r, info = load_or_evaluate(path, settings, compute, reevaluate=reevaluate, to_state=lambda r: r,
                                       from_state=lambda s: s, log=log)
        except FileNotFoundError:
            if compute_missing or missing is None:
                raise
            missing.append(label(c))
            continue
        log(f"[robust study] {label(c)}: clean {100 * r['clean'][0]:.1f}%, white-box "
            + ", ".join(f"eps {e:g} {100 * a:.1f}%" for e, a in sorted(r["whitebox"].items()))
            + f" (n = {len(y)}; trained {r['train_seconds'] / 60:.1f} min; {info['status']})")
        out.append((c, r, info))
    return out


def _data(ws):
    x, y = ws.test_set()
    n = min(ws.profile.robust_study_n, len(y))
    return x[:n], y[:n]


def _measured_settings(ws, x, y) -> dict:
    """What every stored piece of the study is measured with: the networks it starts from and is judged by,
    the images and the attack."""
    from ..eval.store import tensor_sha256
    p = ws.profile
    G, _ = ws.generator()
    E0, _ = ws.encoder()
    C, _ = ws.classifier()
    return {"encoder_sha256": model_sha256(E0), "generator_sha256": model_sha256(G),
            "classifier_sha256": model_sha256(C), "data_sha256": tensor_sha256(x, y), "n": len(y),
            "attack": parse_attack(p.robust_study_attack).settings(), "attack_eps": list(p.robust_study_eps)}


def measure(ws, E, x, y) -> dict:
    """EGAN with encoder ``E`` on (x, y): clean accuracy and white-box accuracy under the study's attack at
    each eps of ``robust_study_eps``."""
    from ..attacks import predict
    from ..defenses.egan import EGAN
    from ..eval.adaptive import whitebox_accuracy
    from ..eval.stats import accuracy_ci
    p = ws.profile
    G, _ = ws.generator()
    C, _ = ws.classifier()
    d = EGAN(E, G, device=ws.device)
    d.batch_size = p.eval_batch
    clean = predict(C, d.purify(x), batch_size=p.eval_batch, device=ws.device).cpu() == y.cpu()
    wb = whitebox_accuracy(d, C, x, y, list(p.robust_study_eps), seed=ws.seed, batch_size=p.campaign_batch,
                           **parse_attack(p.robust_study_attack).kwargs)
    return {"clean_correct": clean, "clean": accuracy_ci(clean)[:2],
            "whitebox": {e: wb["accuracy"][e] for e in wb["accuracy"]}, "ci95": wb["ci95"], "n": len(y)}


def baseline(ws, results_dir, *, compute_missing: bool = True, reevaluate: bool = False, log=print):
    """The paper's EGAN (its converged E, no fine-tune) measured exactly as the candidates are: the row
    that tells what the fine-tunes bought. A stored piece like theirs; None when it is not stored and
    ``compute_missing`` is False."""
    from ..eval.store import load_or_evaluate
    p = ws.profile
    E0, _ = ws.encoder()
    x, y = _data(ws)
    settings = {"study": "robust_choices", "baseline": "EGAN, no fine-tune", "seed": ws.seed,
                **_measured_settings(ws, x, y)}
    path = study_dir(results_dir, p.name) / "baseline_egan.pt"

    def compute():
        if not compute_missing:
            raise FileNotFoundError(path)
        return measure(ws, E0, x, y)
    try:
        r, info = load_or_evaluate(path, settings, compute, reevaluate=reevaluate, to_state=lambda r: r,
                                   from_state=lambda s: s, log=log)
    except FileNotFoundError:
        if compute_missing:
            raise
        return None
    log(f"[robust study] EGAN, no fine-tune: clean {100 * r['clean'][0]:.1f}%, white-box "
        + ", ".join(f"eps {e:g} {100 * a:.1f}%" for e, a in sorted(r["whitebox"].items())) + f" ({info['status']})")
    return r


def best(rows: list, clean_tolerance: float = 0.02):
    """The rule of the module docstring: (candidate, result) or None when there are no rows."""
    if not rows:
        return None
    top_clean = max(r["clean"][0] for _, r, _ in rows)
    ok = [(c, r) for c, r, _ in rows if r["clean"][0] >= top_clean - clean_tolerance]
    return max(ok, key=lambda cr: (sum(cr[1]["whitebox"].values()) / len(cr[1]["whitebox"]), -cr[0]["inner_steps"]))


def markdown(rows: list, base: dict | None = None) -> str:
    """One row per candidate: the knobs, clean accuracy and white-box accuracy per eps with 95% intervals;
    first, when given, the ``baseline`` row (the paper's EGAN, no fine-tune)."""
    if not rows and base is None:
        return "No candidate of the robust-encoder study is stored yet."
    eps = sorted((rows[0][1] if rows else base)["whitebox"])
    head = "| objective | train eps | inner steps | clean share | clean (%) | " + \
        " | ".join(f"white-box eps {e:g} (%)" for e in eps) + " | training (min) |"
    lines = [head, "|" + "---|" * (6 + len(eps))]
    if base is not None:
        lines.append(f"| EGAN, no fine-tune | - | - | - | {_cells(base, eps)} | - |")
    for c, r, _ in rows:
        lines.append(f"| {c['objective']} | {c['eps']:g} | {c['inner_steps']} | {c['clean_fraction']:g} | "
                     f"{_cells(r, eps)} | {r['train_seconds'] / 60:.1f} |")
    return "\n".join(lines)


def _cells(r: dict, eps) -> str:
    """Clean accuracy, then white-box accuracy at each eps, in %, with 95% intervals (table cells)."""
    pct = lambda a, ci: f"{100 * a:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"  # noqa: E731
    return " | ".join([pct(*r["clean"])] + [pct(r["whitebox"][e], r["ci95"][e]) for e in eps])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--results-dir", default="book/results")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reevaluate", action="store_true")
    a = ap.parse_args(argv)
    from .. import setup
    ws = setup(a.profile, a.seed, a.device, None, a.artifacts, progress=False, threads=a.threads)
    base = baseline(ws, a.results_dir, reevaluate=a.reevaluate)
    rows = run(ws, a.results_dir, reevaluate=a.reevaluate)
    print(markdown(rows, base))
    b = best(rows)
    if b is not None:
        print(f"best by the rule: {label(b[0])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
