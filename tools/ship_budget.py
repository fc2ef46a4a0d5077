"""Turn the budget study's chosen G and E into the profile's checkpoints (then ship them with ship_weights.py).

    python tools/ship_budget.py --study artifacts/budget --budget 512000 [--profile cpu]
    python tools/ship_budget.py --study artifacts/budget --check     # only verify the digests
    python tools/ship_budget.py ... && python tools/ship_weights.py --profile cpu

The study (egan_lib.studies.budget) trains G epoch by epoch and E as branches of one warmup-stable-decay
run; its budget.json records each snapshot's sha256. This tool checks that the study's G and E files are
the ones measured there (sha256 of the weights), that the profile names the same recipe (G epochs, T,
the image-step budget, schedule, batch, lr, training precision), and writes them as verified checkpoints
under artifacts/checkpoints/<profile>/ with the config the Workspace expects, so ``ws.gan()`` and
``ws.encoder()`` load them. The history stored with E is the study's logged trunk loss (constant lr,
up to the branch point); G's is the study's per-epoch measurements (the GAN stage logs no per-step loss).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from egan_lib.checkpoints import model_sha256, save_checkpoint  # noqa: E402
from egan_lib.config import get_profile  # noqa: E402
from egan_lib.models import build_encoder, build_generator  # noqa: E402
from egan_lib.workflow import setup  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="artifacts/budget")
    ap.add_argument("--budget", type=int, default=None, help="image-steps of the E to ship (default: the profile's)")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    ap.add_argument("--check", action="store_true", help="verify only, write nothing")
    ap.add_argument("--generator-only", action="store_true",
                    help="write G alone (what Defense-GAN needs) while the encoder budgets still train")
    a = ap.parse_args(argv)
    study = Path(a.study)
    res = json.loads((study / "budget.json").read_text())
    p = get_profile(a.profile)
    budget = a.budget or p.enc_image_steps
    ep = res["encoder"]["generator_epochs"]
    problems = []
    if p.gan_epochs != ep:
        problems.append(f"profile gan_epochs = {p.gan_epochs}, the study's G has {ep} epochs")
    if p.enc_image_steps != budget:
        problems.append(f"profile enc_image_steps = {p.enc_image_steps}, shipping the {budget:,} budget")
    if (p.enc_latents, p.enc_batch, p.enc_lr, p.enc_schedule) != (res["encoder"]["latents"], res["encoder"]["batch"],
                                                                  res["encoder"]["lr"], "wsd"):
        problems.append("profile enc_latents / enc_batch / enc_lr / enc_schedule differ from the study's")
    if p.enc_train_bf16 != bool(res["bf16_autocast_for_E"]):
        problems.append(f"profile enc_train_bf16 = {p.enc_train_bf16}, the study trained with bf16 = "
                        f"{res['bf16_autocast_for_E']}")
    snap = next(s for s in res["gan"]["snapshots"] if s["epochs"] == ep)
    row = next((b for b in res["encoder"]["budgets"] if b["image_steps"] == budget), None)
    if row is None and not a.generator_only:
        problems.append(f"no encoder budget {budget:,} in {study / 'budget.json'}")
    G = build_generator(p)
    G.load_state_dict(torch.load(study / f"G_ep{ep:02d}.pt", weights_only=True))
    if model_sha256(G) != snap["generator_sha256"]:
        problems.append(f"G_ep{ep:02d}.pt is not the G the study measured (sha256 differs)")
    E = build_encoder(p)
    if row is not None and not a.generator_only:
        E.load_state_dict(torch.load(study / f"E_{budget}.pt", weights_only=True))
        if model_sha256(E) != row["encoder_sha256"]:
            problems.append(f"E_{budget}.pt is not the E the study measured (sha256 differs)")
    if problems:
        print("not shipped:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"G@{ep} {snap['generator_sha256'][:12]}" + ("" if a.generator_only else
          f" and E@{budget:,} {row['encoder_sha256'][:12]}") + ": verified")
    if a.check:
        return 0
    ws = setup(p, seed=res["seed"], device="cpu", artifacts_dir=a.artifacts, use_shipped_weights=False)
    out = ws.checkpoint_dir
    g_hist = {"budget_study": {"epochs": [s["epochs"] for s in res["gan"]["snapshots"]],
                               "min_class_share": [s["min_class_share"] for s in res["gan"]["snapshots"]],
                               "max_class_share": [s["max_class_share"] for s in res["gan"]["snapshots"]],
                               "mean_confidence": [s["mean_confidence"] for s in res["gan"]["snapshots"]],
                               "seconds_per_epoch": res["gan"]["seconds_per_epoch"]}}
    save_checkpoint(out / "generator.pt", G, ws.checkpoint_config("generator", **ws.generator_config()),
                    kind="generator", extra=g_hist)
    print("wrote", out / "generator.pt")
    if a.generator_only:
        return 0
    trunk = [t for t in res["encoder"]["trunk_loss"] if t[0] <= row["steps"] - row["decay_steps"]]
    e_hist = {"step": [t[0] for t in trunk], "loss": [t[1] for t in trunk],
              "note": f"the budget study's trunk (constant lr) up to step {row['steps'] - row['decay_steps']:,}; "
                      f"then {row['decay_steps']:,} steps of linear decay (not logged)",
              "budget_study": {k: row[k] for k in ("image_steps", "steps", "decay_steps", "recon_gen", "recon_real",
                                                    "egan", "encoder_sha256")}}
    save_checkpoint(out / "encoder.pt", E, ws.checkpoint_config("encoder", **ws.encoder_config(G)),
                    kind="encoder", extra=e_hist)
    print("wrote", out / "encoder.pt")
    # the other models come from the shipped weights, unchanged (ship_weights.py rewrites the folder)
    shipped = ROOT / "egan_lib" / "weights" / p.name
    for f in sorted(shipped.glob("*.pt")):
        if f.name not in ("generator.pt", "encoder.pt") and not (out / f.name).exists():
            shutil.copy2(f, out / f.name)
            print("copied", f.name, "from the shipped weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
