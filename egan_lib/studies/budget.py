"""How long to train G and E: the budget study behind the ``cpu`` profile's choices.

The paper leaves open how long the DCGAN generator G and the encoder E are trained (and E's number
of latents T, optimiser and schedule). This study measures it, resumably, in two stages:

1. **G epochs.** One DCGAN run (the profile's G/D settings) is continued epoch by epoch; at each
   ``--gan-epochs`` snapshot it records the classifier's class histogram and mean confidence on
   10,000 generated digits, and EGAN's clean accuracy with a short encoder trained on that G
   (the same short budget for every snapshot, so only G differs).
2. **E budget.** On the chosen G (rule: the snapshot with the highest short-E clean accuracy;
   ties go to fewer epochs), T latents are drawn once and E is trained with Adam at a constant
   learning rate (the trunk). For each log-spaced budget B (image-steps = steps x batch) the trunk is
   branched at 0.9 B and the branch decays the learning rate linearly to 0 over the last 0.1 B
   (a warmup-stable-decay schedule): every budget gets an annealed encoder for the price of one
   run plus 10% per budget. Each branch is evaluated: reconstruction error on held-out G(z) and on
   real test digits, and EGAN's accuracy clean and under oblivious FGSM (gradient through C only).

Everything is checkpointed atomically under ``--out`` (the trunk at least every
``--checkpoint-minutes``), so a stopped run resumes where it stopped; ``budget.json`` there is
rewritten after every finished piece. Run:

    OMP_NUM_THREADS=2 python -m egan_lib.studies.budget --out artifacts/budget
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from .. import __version__
from .._atomic import atomic_write
from ..attacks import fgsm_grid, predict
from ..checkpoints import load_checkpoint, model_sha256
from ..config import describe_runtime, get_profile, native_bf16
from ..data import load_mnist, subset, to_float
from ..defenses.egan import reconstruct
from ..eval.stats import accuracy_ci, mean_ci
from ..explore import squared_error
from ..models import build_classifier, build_discriminator, build_encoder, build_generator
from ..training import (adversarial_step, generate, reconstruction_loss, seeded_generator, train_encoder,
                        wsd_lr)

SHIPPED = Path(__file__).resolve().parent.parent / "weights"


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _save(path: Path, obj) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def _write_json(path: Path, obj) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()))


def load_shipped_classifier(profile: str = "cpu"):
    """The profile's shipped classifier C (verified checkpoint), in eval mode."""
    ck = load_checkpoint(SHIPPED / profile / "classifier.pt", kind="classifier")
    C = build_classifier()
    C.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck.state_dict.items()})
    return C.eval()


def _acc(correct: torch.Tensor) -> dict:
    acc, ci, n = accuracy_ci(correct)
    return {"accuracy": acc, "ci95": ci, "n": n}


def _mean_ci(v: torch.Tensor) -> dict:
    mean, half, n = mean_ci(v)
    return {"mean": mean, "ci95_half": half, "n": n}


def evaluate_encoder(E, G, C, x_test, y_test, x_gen, eps_values=(0.0, 0.1, 0.3, 0.5)) -> dict:
    """Reconstruction errors (held-out G(z), real digits) and EGAN's accuracy under oblivious FGSM."""
    rec_gen = squared_error(x_gen, reconstruct(E, G, x_gen, batch_size=250))
    rec_real = squared_error(x_test, reconstruct(E, G, x_test, batch_size=250))
    adv = fgsm_grid(C, x_test, y_test, list(eps_values))
    acc = {f"{e:.2f}": _acc(predict(C, reconstruct(E, G, xa, batch_size=250)) == y_test) for e, xa in adv.items()}
    return {"recon_gen": _mean_ci(rec_gen), "recon_real": _mean_ci(rec_real), "egan": acc}


# ---------------------------------------------------------------------------------------------- stage 1
def gan_stage(args, res, out: Path, x_train, C, x_test, y_test) -> None:
    p = get_profile(args.profile)
    state_path = out / "gan_state.pt"
    G, D = build_generator(p), build_discriminator(p)
    opt_g = torch.optim.Adam(G.parameters(), lr=p.gan_lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=p.gan_lr, betas=(0.5, 0.999))
    g = seeded_generator(args.seed)
    epoch = 0
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        G.load_state_dict(st["G"]); D.load_state_dict(st["D"])
        opt_g.load_state_dict(st["opt_g"]); opt_d.load_state_dict(st["opt_d"]); g.set_state(st["rng"])
        epoch = st["epoch"]
        _log(f"GAN: resumed after epoch {epoch}")
    n, bs = len(x_train), p.gan_batch
    done = {s["epochs"] for s in res["gan"]["snapshots"]}
    for ep in sorted(e for e in args.gan_epochs if e <= epoch and e not in done):   # stopped mid-measurement
        snap_path = out / f"G_ep{ep:02d}.pt"
        if snap_path.exists():
            Gs = build_generator(p)
            Gs.load_state_dict(torch.load(snap_path, weights_only=True))
            res["gan"]["snapshots"].append(measure_generator(args, Gs.eval(), C, x_test, y_test, ep))
            res["gan"]["snapshots"].sort(key=lambda s: s["epochs"])
            done.add(ep)
            _write_json(out / "budget.json", res)
    while epoch < max(args.gan_epochs):
        t0 = time.perf_counter()
        G.train(); D.train()
        perm = torch.randperm(n, generator=g)
        for b in range(n // bs):
            real = x_train[perm[b * bs:(b + 1) * bs]]
            z = torch.randn(len(real), G.latent_dim, generator=g)
            adversarial_step(G, D, opt_g, opt_d, real, z)
        epoch += 1
        G.eval(); D.eval()
        _save(state_path, {"G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(),
                           "opt_d": opt_d.state_dict(), "rng": g.get_state(), "epoch": epoch})
        res["gan"]["seconds_per_epoch"].append(round(time.perf_counter() - t0, 1))
        _log(f"GAN epoch {epoch}: {time.perf_counter() - t0:.0f} s")
        if epoch in args.gan_epochs and epoch not in done:
            _save(out / f"G_ep{epoch:02d}.pt", G.state_dict())
            res["gan"]["snapshots"].append(measure_generator(args, G, C, x_test, y_test, epoch))
            _write_json(out / "budget.json", res)


def measure_generator(args, G, C, x_test, y_test, epoch: int) -> dict:
    p = get_profile(args.profile)
    t0 = time.perf_counter()
    x_gen = generate(G, 10_000, seed=args.seed + 777)
    with torch.inference_mode():
        probs = torch.cat([C(x_gen[i:i + 1000]).exp() for i in range(0, len(x_gen), 1000)])
    hist = torch.bincount(probs.argmax(1), minlength=10).tolist()
    E = build_encoder(p)
    train_encoder(E, G, n_latents=args.short_latents, epochs=args.short_epochs, batch_size=p.enc_batch,
                  lr=p.enc_lr, seed=args.seed, progress=False, bf16=args.bf16, channels_last=args.bf16)
    x_held = generate(G, 1000, seed=args.seed + 12345)
    ev = evaluate_encoder(E, G, C, x_test, y_test, x_held, eps_values=(0.0,))
    snap = {"epochs": epoch, "class_histogram": hist, "mean_confidence": float(probs.max(1).values.mean()),
            "max_class_share": max(hist) / sum(hist), "min_class_share": min(hist) / sum(hist),
            "short_encoder_image_steps": args.short_latents * args.short_epochs,
            "egan_clean": ev["egan"]["0.00"], "recon_real": ev["recon_real"], "recon_gen": ev["recon_gen"],
            "generator_sha256": model_sha256(G), "seconds": round(time.perf_counter() - t0, 1)}
    _log(f"G@{epoch}: hist {hist}, confidence {snap['mean_confidence']:.3f}, "
         f"EGAN clean (short E) {snap['egan_clean']['accuracy']:.3f}")
    return snap


GENERATOR_RULE = ("among the G snapshots whose short-encoder EGAN clean accuracy is not significantly below the "
                  "best one (95% Wilson intervals overlap), the one whose rarest class is drawn most often "
                  "(largest min class share); ties: fewer epochs")


def choose_generator(res) -> int:
    """The G snapshot the encoder study uses (``GENERATOR_RULE``): the clean accuracy with a short E cannot
    separate snapshots finer than its interval, so among the statistically tied ones the most class-balanced
    G is taken (a G that rarely draws a class sends real digits of that class to other classes)."""
    snaps = res["gan"]["snapshots"]
    if not snaps:
        raise ValueError("res: no G snapshot measured")
    best_lo = max(s["egan_clean"]["ci95"][0] for s in snaps)
    tied = [s for s in snaps if s["egan_clean"]["ci95"][1] >= best_lo]
    return max(tied, key=lambda s: (round(s["min_class_share"], 6), -s["epochs"]))["epochs"]


# ---------------------------------------------------------------------------------------------- stage 2
class _Stream:
    """The encoder's data order: one shuffle of the T latents per epoch, resumable."""

    def __init__(self, T: int, seed: int):
        self.g = seeded_generator(seed)
        self.T, self.pos, self.perm = T, T, None

    def next(self, bs: int) -> torch.Tensor:
        if self.pos + bs > self.T:
            self.perm, self.pos = torch.randperm(self.T, generator=self.g), 0
        idx = self.perm[self.pos:self.pos + bs]
        self.pos += bs
        return idx

    def state(self) -> dict:
        return {"rng": self.g.get_state(), "pos": self.pos, "perm": self.perm}

    def load(self, st: dict) -> None:
        self.g.set_state(st["rng"]); self.pos, self.perm = st["pos"], st["perm"]


def _enc_step(E, G, opt, X, idx, lr: float, bf16: bool) -> float:
    for grp in opt.param_groups:
        grp["lr"] = lr
    xb = X[idx]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        z = E(xb.contiguous(memory_format=torch.channels_last) if bf16 else xb)
    loss = reconstruction_loss(xb, G(z.float()))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def encoder_stage(args, res, out: Path, C, x_test, y_test) -> None:
    p = get_profile(args.profile)
    ep = res["encoder"]["generator_epochs"]
    G = build_generator(p)
    G.load_state_dict(torch.load(out / f"G_ep{ep:02d}.pt", weights_only=True))
    G.eval()
    for q in G.parameters():
        q.requires_grad_(False)
    T, bs, lr = args.latents, p.enc_batch, p.enc_lr
    X = generate(G, T, seed=args.seed)
    x_held = generate(G, 1000, seed=args.seed + 12345)
    torch.manual_seed(args.seed)
    E = build_encoder(p)
    if args.bf16:
        E = E.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(E.parameters(), lr=lr)
    stream = _Stream(T, args.seed + 1)
    trunk_path = out / "encoder_trunk.pt"
    step = 0
    if trunk_path.exists():
        st = torch.load(trunk_path, weights_only=False)
        E.load_state_dict(st["E"]); opt.load_state_dict(st["opt"]); stream.load(st["stream"])
        step = st["step"]
        res["encoder"]["trunk_loss"] = st["trunk_loss"]
        _log(f"E: resumed trunk at step {step}")
    else:   # a trunk from step 0 (also when its checkpoint was lost): its loss curve starts anew
        res["encoder"]["trunk_loss"] = []

    def save_trunk():
        _save(trunk_path, {"E": E.state_dict(), "opt": opt.state_dict(), "stream": stream.state(), "step": step,
                           "trunk_loss": res["encoder"]["trunk_loss"]})

    done = {b["image_steps"] for b in res["encoder"]["budgets"]}
    last_ckpt, run, cnt = time.time(), 0.0, 0
    t_trunk = time.perf_counter()
    for B in args.budgets:
        if B in done:
            continue
        total = B // bs
        branch_at = int(round(0.9 * total))
        while step < branch_at:
            E.train()
            run += _enc_step(E, G, opt, X, stream.next(bs), lr, args.bf16)
            cnt += 1; step += 1
            if cnt == 20:
                res["encoder"]["trunk_loss"].append([step, run / cnt]); run, cnt = 0.0, 0
            if time.time() - last_ckpt > 60 * args.checkpoint_minutes:
                save_trunk(); last_ckpt = time.time()
                _log(f"E trunk step {step} ({step * bs:,} image-steps), loss {res['encoder']['trunk_loss'][-1][1]:.2f}")
        save_trunk(); last_ckpt = time.time()
        # the branch: a copy of E and its optimiser, lr decayed linearly to 0 over the last 10%
        t0 = time.perf_counter()
        Eb = copy.deepcopy(E)
        ob = torch.optim.Adam(Eb.parameters(), lr=lr)
        ob.load_state_dict(opt.state_dict())
        sb = _Stream(T, 0); sb.load(copy.deepcopy(stream.state()))
        n_decay = total - branch_at
        for i in range(n_decay):
            Eb.train()
            _enc_step(Eb, G, ob, X, sb.next(bs), wsd_lr(branch_at + i, total, lr), args.bf16)
        Eb = Eb.to(memory_format=torch.contiguous_format).eval()
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        ev = evaluate_encoder(Eb, G, C, x_test, y_test, x_held)
        _save(out / f"E_{B}.pt", Eb.state_dict())
        res["encoder"]["budgets"].append({"image_steps": B, "steps": total, "decay_steps": n_decay, **ev,
                                          "encoder_sha256": model_sha256(Eb),
                                          "machine": describe_runtime("cpu")["device_name"],
                                          "branch_seconds": round(train_s, 1),
                                          "eval_seconds": round(time.perf_counter() - t1, 1),
                                          "trunk_seconds_so_far": round(time.perf_counter() - t_trunk, 1)})
        res["encoder"]["budgets"].sort(key=lambda b: b["image_steps"])
        _write_json(out / "budget.json", res)
        _log(f"E budget {B:,}: recon G(z) {ev['recon_gen']['mean']:.2f}, real {ev['recon_real']['mean']:.2f}, "
             f"EGAN clean {ev['egan']['0.00']['accuracy']:.3f}, eps0.3 {ev['egan']['0.30']['accuracy']:.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="artifacts/budget")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--gan-epochs", type=int, nargs="+", default=[5, 10, 15, 20, 25])
    ap.add_argument("--short-latents", type=int, default=8000)
    ap.add_argument("--short-epochs", type=int, default=2)
    ap.add_argument("--latents", type=int, default=60_000, help="T for the budget run")
    ap.add_argument("--budgets", type=int, nargs="+",
                    default=[16_000, 32_000, 64_000, 128_000, 256_000, 512_000])
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    ap.add_argument("--train-size", type=int, default=None, help="MNIST training images for G (default: all)")
    ap.add_argument("--classifier", default="cpu", help="whose shipped classifier C measures G and EGAN (default: cpu)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.bf16 = native_bf16() if a.precision == "auto" else a.precision == "bf16"
    a.budgets = sorted(a.budgets)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rpath = out / "budget.json"
    res = json.loads(rpath.read_text()) if rpath.exists() else {
        "what": "G epochs and E training budget (egan_lib.studies.budget)", "profile": a.profile, "seed": a.seed,
        "egan_lib": __version__, "runtime": describe_runtime("cpu"), "bf16_autocast_for_E": a.bf16,
        "command": "python -m egan_lib.studies.budget " + " ".join(argv if argv is not None else sys.argv[1:]),
        "threat_model": "oblivious FGSM (gradient through C only), eps on [0, 1] pixels",
        "gan": {"snapshots": [], "seconds_per_epoch": []},
        "encoder": {"budgets": [], "trunk_loss": [], "latents": a.latents, "lr": get_profile(a.profile).enc_lr,
                    "batch": get_profile(a.profile).enc_batch,
                    "schedule": "Adam, constant lr; each budget branches at 0.9 B and decays linearly to 0"}}
    ds = load_mnist(None, verbose=True)
    x_train, _ = subset(ds.train_images, ds.train_labels, a.train_size, seed=a.seed)
    x_train = to_float(x_train)
    x_test, y_test = subset(ds.test_images, ds.test_labels, a.n_test, seed=a.seed)
    x_test = to_float(x_test)
    C = load_shipped_classifier(a.classifier)
    res["classifier_sha256"] = model_sha256(C)
    res["n_test"] = len(y_test)
    if len(res["gan"]["snapshots"]) < len(a.gan_epochs):
        gan_stage(a, res, out, x_train, C, x_test, y_test)
    res["encoder"]["generator_epochs"] = res["encoder"].get("generator_epochs") or choose_generator(res)
    res["encoder"]["generator_rule"] = GENERATOR_RULE
    _write_json(rpath, res)
    _log(f"E stage on G@{res['encoder']['generator_epochs']}")
    encoder_stage(a, res, out, C, x_test, y_test)
    _log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

