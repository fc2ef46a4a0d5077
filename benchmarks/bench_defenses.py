"""Seconds per image of the seven defenses on one batch: the timing protocol of chapter 06.

    python benchmarks/bench_defenses.py [--profile cpu] [--batch 64] [--threads 2] [--device auto]
                                        [--artifacts artifacts] [--repeats 3] [--only PixelDefend ...]

Every defense is built with the profile's architectures and settings (Defense-GAN's L and R,
PixelDefend's PixelCNN, ...). Trained weights are loaded from the workspace's checkpoints when they
exist (``<artifacts>/checkpoints/<profile>/<kind>.pt``, verified); otherwise the networks keep a random
initialisation of the same architecture, which costs the same time. Nothing is trained here.

The batch: the first ``--batch`` MNIST test digits from the local cache when there is one, otherwise
synthetic digit-like strokes. Each defense purifies the same batch: ``--warmup`` untimed calls, then the
median of ``--repeats`` timed calls, each bracketed by a device synchronisation
(``egan_lib.eval.timing.time_per_image``). Printed: seconds per image, device, threads and batch size.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from egan_lib import defenses as dfn  # noqa: E402
from egan_lib.config import describe_runtime, device as pick_device, get_profile, seed_everything  # noqa: E402
from egan_lib.models import build_encoder, build_generator  # noqa: E402


def _strokes(n: int, seed: int = 0) -> torch.Tensor:
    """Digit-like synthetic images (two bright segments on black) when no MNIST cache is available."""
    g = torch.Generator().manual_seed(seed)
    pts = 5 + 18 * torch.rand(n, 2, 2, 2, generator=g)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    p = torch.stack([xx, yy], -1).view(1, 1, 28, 28, 2)
    a, b = pts[:, :, 0].view(n, 2, 1, 1, 2), pts[:, :, 1].view(n, 2, 1, 1, 2)
    ab = b - a
    t = (((p - a) * ab).sum(-1, keepdim=True) / (ab * ab).sum(-1, keepdim=True).clamp_min(1e-6)).clamp(0, 1)
    dist = (p - (a + t * ab)).norm(dim=-1)
    return ((2.2 - dist).clamp(0, 1).amax(1, keepdim=True) * 255).round() / 255


def _batch(n: int, data_dir) -> tuple[torch.Tensor, str]:
    try:
        from egan_lib.data import load_mnist, to_float
        ds = load_mnist(data_dir, sources=("cache",), verbose=False)
        return to_float(ds.test_images[:n]), "MNIST test digits"
    except Exception:  # noqa: BLE001 - no cache: synthetic digits time the same
        return _strokes(n), "synthetic strokes (no MNIST cache)"


def _load(model: torch.nn.Module, ckpt_dir: Path, kind: str) -> str:
    """Trained weights from the workspace checkpoint when it exists and fits; else keep the random init."""
    from egan_lib.checkpoints import load_checkpoint
    path = ckpt_dir / f"{kind}.pt"
    if not path.exists():
        return "random init (no checkpoint)"
    try:
        ck = load_checkpoint(path, kind=kind)
        model.load_state_dict(ck.state_dict, strict=True)
        return "trained"
    except Exception as e:  # noqa: BLE001 - a stale checkpoint of another architecture
        return f"random init ({type(e).__name__})"


def build(profile, dev: torch.device, ckpt_dir: Path, seed: int = 0) -> tuple[dict, dict]:
    """The seven defenses with the profile's settings: ({name: Defense}, {name: weights status})."""
    p = profile
    torch.manual_seed(seed)
    G, E = build_generator(p), build_encoder(p)
    dncnn = dfn.DnCNN(p.dncnn_layers, p.dncnn_channels)
    ae = dfn.ConvAutoEncoder(p.ae_channels)
    ape = dfn.APEGANGenerator(p.apegan_width)
    pix = dfn.PixelCNN(p.pixelcnn_channels, p.pixelcnn_layers)
    status = {"Original": "-"}
    g_status = _load(G, ckpt_dir, "generator")
    status["EGAN"] = f"G {g_status}; E {_load(E, ckpt_dir, 'encoder')}"
    status["DnCNN"] = _load(dncnn, ckpt_dir, "dncnn")
    status["AutoEncoder"] = _load(ae, ckpt_dir, "autoencoder")
    status["APE-GAN"] = _load(ape, ckpt_dir, "apegan")
    status["PixelDefend"] = _load(pix, ckpt_dir, "pixelcnn")
    status["Defense-GAN"] = f"G {g_status}"
    ds = {
        "Original": dfn.Original(device=dev),
        "EGAN": dfn.EGAN(E, G, bf16=p.bf16 and dev.type == "cpu", channels_last=p.channels_last, device=dev),
        "DnCNN": dfn.DnCNNDefense(dncnn, device=dev),
        "AutoEncoder": dfn.AutoEncoderDefense(ae, device=dev),
        "APE-GAN": dfn.APEGANDefense(ape, device=dev),
        "PixelDefend": dfn.PixelDefend(pix, eps_def=p.pixeldefend_eps, device=dev),
        "Defense-GAN": dfn.DefenseGAN(G, steps=p.defensegan_steps, restarts=p.defensegan_restarts,
                                      lr=p.defensegan_lr, seed=seed, device=dev),
    }
    return ds, status


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--only", nargs="+", default=None, choices=dfn.ALL_DEFENSES, metavar="NAME")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = ap.parse_args(argv)
    if a.batch < 1 or a.threads < 1 or a.repeats < 1 or a.warmup < 0:
        ap.error("--batch, --threads and --repeats must be >= 1, --warmup >= 0")
    torch.set_num_threads(a.threads)
    seed_everything(0)
    from egan_lib.eval.timing import time_per_image
    prof = get_profile(a.profile)
    dev = pick_device(a.device)
    ckpt_dir = Path(a.artifacts) / "checkpoints" / prof.name
    x, source = _batch(a.batch, a.data_dir)
    # the timed input: FGSM-like +-0.3 sign noise on the digits (costs are the same on clean ones)
    g = torch.Generator().manual_seed(0)
    x = (x + 0.3 * torch.randint(0, 2, x.shape, generator=g).float().mul(2).sub(1)).clamp(0, 1)
    defenses, status = build(prof, dev, ckpt_dir)
    names = a.only or list(dfn.ALL_DEFENSES)
    rt = describe_runtime(dev)
    print(f"profile {prof.name}: device {rt['device']} ({rt['device_name']}), torch threads {torch.get_num_threads()}, "
          f"batch {a.batch} ({source}), warm-up {a.warmup}, median of {a.repeats}")
    print(f"Defense-GAN L = {prof.defensegan_steps}, R = {prof.defensegan_restarts}; PixelCNN {prof.pixelcnn_channels} "
          f"channels x {prof.pixelcnn_layers} layers, eps_def = {prof.pixeldefend_eps:.4f}; DnCNN "
          f"{prof.dncnn_layers} x {prof.dncnn_channels}; EGAN bf16 = {prof.bf16 and dev.type == 'cpu'}")
    print(f"{'method':<12} {'s/image':>10} {'ms/image':>10}  weights")
    rows = {}
    for name in names:
        t0 = time.perf_counter()
        r = time_per_image(defenses[name], x, repeats=a.repeats, warmup=a.warmup)
        rows[name] = {"seconds_per_image": r["seconds_per_image"], "times": r["times"], "weights": status[name],
                      "wall_s": round(time.perf_counter() - t0, 2)}
        print(f"{name:<12} {r['seconds_per_image']:>10.2e} {1e3 * r['seconds_per_image']:>10.3f}  {status[name]}",
              flush=True)
    if a.json:
        out = {"profile": prof.name, "device": rt["device"], "device_name": rt["device_name"],
               "threads": torch.get_num_threads(), "batch": a.batch, "input": source, "repeats": a.repeats,
               "warmup": a.warmup, "methods": rows}
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
