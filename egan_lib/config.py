"""Profiles (smoke / cpu / paper), device selection and seeding.

A profile is the single papermill parameter that sets the scale of the whole book:

* ``smoke``: proves the plumbing on a 2-core CPU in minutes (tiny widths and subsets).
* ``cpu``:   the reference run on a 2-core CPU: the paper's architectures at full width,
             full MNIST for G and C, a test subset large enough for tight intervals.
* ``paper``: the paper's full scale on a GPU (full test set, Defense-GAN L=200 / R=10).

What each profile shrinks against the paper is stated in the book; the numbers live here only.
"""
from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from ._validate import check_eps, check_seed

from ._profile_rules import MNIST_TEST_SIZE, MNIST_TRAIN_SIZE, check_field  # noqa: F401  (re-exported)


def eps_grid(step: float = 0.05, maximum: float = 1.0) -> list[float]:
    """[0, step, 2*step, ..., maximum], rounded to 1e-6 (the paper: step 0.05 up to 1)."""
    step = check_eps(step, "step")
    maximum = check_eps(maximum, "maximum")
    if step == 0:
        raise ValueError("step: must be > 0")
    n = int(round(maximum / step))
    if abs(n * step - maximum) > 1e-9:
        raise ValueError(f"step: {step} does not divide maximum {maximum} into whole steps")
    return [round(i * step, 6) for i in range(n + 1)]


@dataclass(frozen=True)
class Profile:
    name: str
    # data and protocol
    train_size: int | None          # MNIST training images used for G, C and the baselines (None = all 60,000)
    n_test: int                     # evaluation subset of the MNIST test set (same images for every method)
    eps_step: float                 # FGSM grid 0, eps_step, ..., 1 (paper: 0.05)
    eval_batch: int = 256           # batch size of purification / evaluation
    eps_values: tuple | None = None # an explicit eps grid instead of 0, eps_step, ..., 1
    expensive_n_test: int | None = None  # Defense-GAN: n of the same subset (None = n_test), spread over the parts
    eval_parts: int = 1             # the n_test images are split into this many disjoint parts (the spread)
    # DCGAN (G and D), latent size L = 30
    latent_dim: int = 30
    g_width: int = 64
    d_width: int = 64
    gan_epochs: int = 10
    gan_batch: int = 128
    gan_lr: float = 2e-4
    # the paper's encoder E
    enc_channels: int = 100
    enc_same_blocks: int = 10
    enc_valid_blocks: int = 11
    enc_latents: int = 20_000       # T, drawn once
    enc_epochs: int = 4
    enc_image_steps: int | None = None  # the budget in image-steps (steps x batch) instead of enc_epochs
    enc_schedule: str = "cosine"    # learning rate: "cosine" decay or "wsd" (constant, linear decay over the last 10%)
    enc_batch: int = 64
    enc_lr: float = 1e-3
    enc_train_bf16: bool = False    # bf16 autocast while training E (part of the recipe: recorded in its checkpoint)
    bf16: bool = False              # bf16 autocast for the encoder when EGAN purifies on CPU
    channels_last: bool = False
    # the paper's classifier C
    clf_epochs: int = 10
    clf_batch: int = 128
    clf_lr: float = 2e-3
    clf_shift: int = 0              # random shifts of up to this many pixels (augmentation)
    # baselines (chapter 05): defaults = the published settings; the profiles below shrink them
    # (egan_lib.defenses documents every choice). *_train_size: images of the profile's training set
    # (a seeded, class-balanced subset; None = all of them).
    dncnn_layers: int = 17          # Zhang et al. 2017: 17 layers of 64 channels
    dncnn_channels: int = 64
    dncnn_epochs: int = 2
    dncnn_batch: int = 128
    dncnn_lr: float = 1e-3
    dncnn_train_size: int | None = None
    dncnn_eps_max: float = 0.3      # FGSM eps ~ U[0, eps_max] in its training pairs
    dncnn_sigma_max: float = 55 / 255  # plus Gaussian sigma ~ U[0, 55/255] (DnCNN-B)
    ae_channels: int = 3            # MagNet's MNIST autoencoder: 3 channels, sigmoid
    ae_epochs: int = 100            # MagNet: 100 epochs
    ae_batch: int = 256
    ae_lr: float = 1e-3
    ae_noise: float = 0.1           # MagNet: Gaussian noise "volume" 0.1
    ae_train_size: int | None = None
    apegan_width: int = 64
    apegan_epochs: int = 2          # APE-GAN's MNIST code: 2 epochs, batch 128, Adam 2e-4
    apegan_batch: int = 128
    apegan_lr: float = 2e-4
    apegan_train_eps: float = 0.3   # FGSM eps of its training examples (the APE-GAN paper's MNIST eps)
    apegan_train_size: int | None = None
    pixelcnn_channels: int = 64
    pixelcnn_layers: int = 6        # residual masked 3x3 layers after the 7x7 type-A layer
    pixelcnn_epochs: int = 3
    pixelcnn_batch: int = 64
    pixelcnn_lr: float = 1e-3
    pixelcnn_train_size: int | None = None
    pixelcnn_test_size: int = 10_000  # MNIST test images on which its bits/dim are reported
    pixeldefend_eps: float = 32 / 255  # PixelDefend's eps_defend for Fashion-MNIST (Song et al. 2018)
    defensegan_steps: int = 200     # L (Samangouei et al. 2018)
    defensegan_restarts: int = 10   # R
    defensegan_lr: float = 10.0     # their SGD-momentum(0.7) lr on the per-pixel mean squared error
    # adaptive attacks (chapter 07)
    onmanifold_steps: int = 200
    hybrid_steps: tuple = (5, 20)          # EGAN + k Defense-GAN steps from z = E(x)
    # chapter 07's attack campaign: one stored piece per (defense, attack, eps) (egan_lib.eval.campaign)
    campaign_n: int = 500                  # the first n images of the test subset
    campaign_eps: tuple = (0.1, 0.2, 0.3, 0.5)
    campaign_defenses: tuple = ("EGAN", "DnCNN", "AutoEncoder", "APE-GAN")
    pixeldefend_n: int = 200               # PixelDefend under BPDA (784 PixelCNN passes per step): first n images
    pixeldefend_attacks: tuple = ("pgd:ce:100x5", "pgd:cw:100x5")   # fp32, batch eval_batch (the pixel loop)
    campaign_attacks: tuple = ("pgd:ce:100x5", "pgd:cw:100x5")   # specs: egan_lib.attack_spec
    campaign_batch: int = 64
    autoattack: str = "autoattack"         # run through every campaign defense at autoattack_eps
    autoattack_eps: tuple = (0.3,)         # () : not run
    restarts_attack: str = "pgd:ce:100x10"  # the restarts curve: through every campaign defense at restarts_eps,
    restarts_eps: tuple = (0.1, 0.2)        # the deployed pipeline's verdict after each restart; () : not run
    steps_curve: tuple = (10, 30, 100, 300)  # PGD-CE with 1 restart through EGAN at steps_curve_eps
    steps_curve_eps: float = 0.2
    dgan_n: int = 100                      # Defense-GAN under BPDA + EOT: the first dgan_n images
    dgan_eps: tuple = (0.3,)
    dgan_attacks: tuple = ("eot2:pgd:ce:100x2", "eot4:pgd:ce:100x1")   # EOT over 2 and 4 draws
    dgan_attacker: tuple = (50, 4)         # the attacker's surrogate of Defense-GAN: (L, R)
    onmanifold_restarts: int = 5           # the on-manifold search: restarts around E(x), onmanifold_steps each
    # chapter 08: the robust encoders (egan_lib.robust, egan_lib.defenses.robust_egan), fine-tuned from E
    robust_objective: str = "reconstruction"  # EGAN-R's inner maximisation: "reconstruction" or "latent"
    robust_eps: float = 0.3                # the training eps of the inner PGD
    robust_inner_steps: int = 3            # the study's pick (egan_lib.studies.robust_choices; its centre had 5)
    robust_clean_fraction: float = 0.5     # share of each batch left unperturbed
    robust_image_steps: int = 128_000      # 2,000 steps of 64
    robust_batch: int = 64
    robust_lr: float = 1e-4
    robust_schedule: str = "wsd"
    robust_latents: int = 60_000           # EGAN-R trains on G(z) of this many latents (EGAN-RC on real digits)
    robust_ce_weight: float = 1.0          # EGAN-RC: weight of the classifier's loss in the outer loss
    robust_bf16: bool = False              # bf16 autocast in the robust training (fp32: no CPU emulates it)
    # chapter 08's evaluation (egan_lib.eval.campaign.robust_plan): chapter 07's white-box attacks, its restarts
    # attack and AutoAttack through the robust variants, and the latent-path attack through them and EGAN
    robust_defenses: tuple = ("EGAN-R", "EGAN-RC")
    robust_eval_eps: tuple = (0.1, 0.2, 0.3)
    robust_autoattack_eps: tuple = (0.1, 0.2, 0.3)   # () : not run
    robust_latent_attack: str = "latent:100x5"
    robust_attack_arithmetic: str = ""      # the cascade's arithmetic suffix ("fp32", "fold", "bf16"); "": as in ch. 07
    robust_eval_chunk: int = 100           # images per stored part of a piece: a long piece resumes part by part
    # the study behind those choices (egan_lib.studies.robust_choices): one knob at a time around a centre
    # fixed before any number (train eps, inner steps, clean share, objective), short fine-tunes
    robust_study_centre: tuple = (0.3, 5, 0.5, "reconstruction")
    robust_study_train_eps: tuple = (0.1, 0.2, 0.3)
    robust_study_inner: tuple = (1, 3, 5)
    robust_study_clean: tuple = (0.0, 0.5)
    robust_study_objectives: tuple = ("reconstruction", "latent")
    robust_study_image_steps: int = 19_200   # 300 steps of 64 per candidate
    robust_study_n: int = 200
    robust_study_attack: str = "pgd:ce:20x1"
    robust_study_eps: tuple = (0.1, 0.2, 0.3)
    campaign_in_book: bool = True          # chapter 07 computes missing pieces (False: hours; it lists them)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    def validate(self) -> "Profile":
        """Check every field (run when a profile is made, by ``replace`` and ``get_profile`` too): sizes,
        epochs, batches and steps are positive integers, ``*_train_size`` None or positive, ``eps_values``
        sorted, unique, from 0, in [0, 1], ``eps_step`` divides 1, learning rates > 0, fractions in [0, 1],
        the attack eps tuples sorted in (0, 1], attack specs parsed. Raises ValueError naming the field."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                check_field(f.name, value)
            except (TypeError, ValueError) as e:
                msg = str(e)
                if not msg.startswith(f.name):
                    msg = f"{f.name}: {msg}"
                raise ValueError(f"profile {self.name!r}, field {msg}") from None
        for f in ("n_test", "expensive_n_test"):
            n = getattr(self, f)
            if n is not None and n % self.eval_parts:
                raise ValueError(f"profile {self.name!r}, field {f}: {n} images do not split into eval_parts = "
                                 f"{self.eval_parts} equal parts")
        if self.expensive_n_test is not None and self.expensive_n_test > self.n_test:
            raise ValueError(f"profile {self.name!r}, field expensive_n_test: {self.expensive_n_test} > n_test "
                             f"= {self.n_test}")
        return self

    def replace(self, **changes) -> "Profile":
        """A checked copy with some fields changed (unknown field names are rejected)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; known fields: {sorted(names)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def eps_grid(self) -> list[float]:
        """The FGSM eps values this profile evaluates (always starts at 0 and ends at 1)."""
        if self.eps_values is not None:
            return [round(float(e), 2) for e in self.eps_values]
        return eps_grid(self.eps_step)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", train_size=2_000, n_test=64, eval_parts=2, eps_step=0.25, eval_batch=64,
        g_width=16, d_width=16, gan_epochs=1, gan_batch=64,
        enc_channels=8, enc_same_blocks=1, enc_valid_blocks=11, enc_latents=512, enc_epochs=1, enc_batch=64,
        clf_epochs=1, clf_batch=128,
        dncnn_layers=5, dncnn_channels=16, dncnn_epochs=1, dncnn_train_size=500,
        ae_epochs=1, ae_lr=1e-2, apegan_width=16, apegan_epochs=1, apegan_train_size=500,
        pixelcnn_channels=16, pixelcnn_layers=3, pixelcnn_epochs=1, pixelcnn_train_size=500, pixelcnn_test_size=200,
        pixelcnn_lr=1e-2,
        defensegan_steps=10, defensegan_restarts=2,
        onmanifold_steps=10, hybrid_steps=(2,),
        # the campaign in miniature; AutoAttack (5,000 Square queries on whatever survives) is left to the
        # unit tests
        campaign_n=16, campaign_eps=(0.1, 0.3, 0.5), campaign_attacks=("pgd:ce:4x2", "pgd:cw:4x2"), campaign_batch=16,
        pixeldefend_n=2, pixeldefend_attacks=("pgd:ce:2x1",),
        autoattack_eps=(), steps_curve=(2, 4, 8), steps_curve_eps=0.3, restarts_attack="pgd:ce:4x3",
        restarts_eps=(0.1,), robust_inner_steps=2, robust_image_steps=256, robust_latents=512,
        robust_study_centre=(0.3, 2, 0.5, "reconstruction"),
        robust_study_train_eps=(0.3,), robust_study_inner=(1,), robust_study_clean=(0.5,),
        robust_study_objectives=("reconstruction",), robust_study_image_steps=64, robust_study_n=8,
        robust_study_attack="pgd:ce:2x1", robust_latent_attack="latent:3x2", robust_eval_eps=(0.3,),
        robust_autoattack_eps=(), robust_eval_chunk=8,
        dgan_n=4, dgan_eps=(0.3,), dgan_attacks=("eot2:pgd:ce:3x2",), dgan_attacker=(3, 1), onmanifold_restarts=2,
    ),
    "cpu": Profile(
        name="cpu", train_size=None, n_test=1000, eval_parts=4, eps_step=0.05, eval_batch=250,
        eps_values=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0), expensive_n_test=500,
        # G and E: the budget study's choices (ch. 03, book/results/mnist-cpu-budget.json): G after 25 epochs;
        # E on T = 60,000 latents for 512,000 image-steps (8,000 steps of 64) with a warmup-stable-decay
        # schedule, trained under bf16 autocast (about 2x faster on CPUs with native bf16; on AVX2-only
        # CPUs it is emulated and slower: retrain with enc_train_bf16=False there)
        gan_epochs=25, enc_latents=60_000, enc_image_steps=512_000, enc_schedule="wsd", enc_train_bf16=True,
        clf_epochs=20, clf_batch=64, clf_shift=1,
        # baselines: the four trainings took 11 min on 2 idle AVX-512 EPYC cores (README; longer on AVX2-only CPUs);
        # seconds per image: benchmarks/bench_defenses.py. The shrinks against the published settings:
        dncnn_epochs=6, dncnn_batch=64, dncnn_lr=2e-3,  # 17 layers x 64 channels as published; 468 steps
        dncnn_train_size=5_000,   # 2 epochs left it under-trained: benchmarks/dncnn_budget.py (see ch. 05)
        ae_epochs=8, ae_lr=1e-2,  # MagNet: 100 epochs at lr 1e-3 (at 1e-2 the loss is flat after 5 epochs)
        apegan_train_size=12_000,  # 2 epochs as published, of 12,000 images instead of 60,000
        pixelcnn_channels=32, pixelcnn_layers=5, pixelcnn_epochs=1, pixelcnn_batch=32,  # our sizing (PixelDefend
        pixelcnn_train_size=12_000, pixelcnn_test_size=1_000,                            # used a PixelCNN++)
        defensegan_steps=200, defensegan_restarts=10,  # the paper's L and R (~0.8 s per image and eps, 2 cores)
        onmanifold_steps=500,
        # the campaign: the attacker computes under bf16 with BatchNorm folded (egan_lib.attacks.fast), about
        # 2.8x faster than fp32 on 2 EPYC cores with native bf16; x_adv is judged by the deployed fp32 defense.
        # On an AVX2-only CPU bf16 is emulated: the stored pieces are reused there, recomputing them is slow.
        # AutoAttack at eps 0.1 is left out: about half the images survive PGD there, and AutoAttack's targeted
        # APGD-T (9 targets x 100 iterations) through EGAN's full-resolution encoder (about 1.5 GFLOP per image
        # forward) costs hours on 2 cores; chapter 07 marks eps 0.1 as an upper bound for that reason
        campaign_attacks=("pgd:ce:100x5:bf16", "pgd:cw:100x5:bf16"), autoattack="autoattack:bf16",
        autoattack_eps=(0.2, 0.3), restarts_attack="pgd:ce:100x10:bf16",
        dgan_attacks=("eot2:pgd:ce:100x2:bf16", "eot4:pgd:ce:100x1:bf16"), campaign_in_book=False,
        # chapter 08: one robust step (3 inner PGD steps on 32 of 64 images, then Adam) cost 6.0 s (EGAN-R) and
        # 7.8 s (EGAN-RC) in fp32 on the 2 AVX2-only EPYC cores that trained the shipped encoders (500 steps of 64:
        # 50 and 65 min, each partly shared with other work).
        # The default (and the paper profile) keeps 2,000 steps
        robust_image_steps=32_000,
        # chapter 08's cascade runs in fp32 on BatchNorm-folded copies (":fold"): one PGD step through EGAN costs
        # 24 ms per image on 2 AVX2-only EPYC cores (39 ms deployed fp32, 471 ms with bf16 emulated; batch 64,
        # benchmarks/attack_step.py, benchmarks/results/attack_step_cpu_avx2.json)
        robust_attack_arithmetic="fold",
    ),
    "paper": Profile(
        name="paper", train_size=None, n_test=10_000, eval_parts=4, expensive_n_test=2_000, eps_step=0.05,
        eval_batch=500,
        gan_epochs=30, enc_latents=60_000, enc_epochs=20, clf_epochs=20,
        dncnn_epochs=10, ae_epochs=100, apegan_epochs=10,
        pixelcnn_channels=128, pixelcnn_layers=10, pixelcnn_epochs=20,
        defensegan_steps=200, defensegan_restarts=10, defensegan_lr=10.0,
        campaign_n=10_000, dgan_n=1_000, campaign_in_book=False,
    ),
}


def get_profile(name: str | Profile, **overrides) -> Profile:
    """The profile called ``name`` (smoke, cpu or paper), optionally with fields overridden."""
    if isinstance(name, Profile):
        prof = name
    else:
        if not isinstance(name, str):
            raise TypeError(f"profile: expected a name out of {sorted(PROFILES)}, got {type(name).__name__}")
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
        prof = PROFILES[name]
    return prof.replace(**overrides) if overrides else prof


def device(name: str | torch.device | None = None) -> torch.device:
    """Pick the compute device: cuda, then mps, then cpu (``name`` = "auto" or None);
    or check that the named one ("cpu", "cuda", "cuda:1", "mps") is usable."""
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(name, str):
        raise TypeError(f"device: expected 'auto', 'cpu', 'cuda' or 'mps', got {type(name).__name__}")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device: {name!r} is not a device name ('auto', 'cpu', 'cuda', 'cuda:0', 'mps')") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but torch.cuda.is_available() is False on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device: {name!r} was asked for but this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device: 'mps' was asked for but it is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: unsupported device type {dev.type!r}")
    return dev


def synchronize(dev: torch.device | str) -> None:
    """Wait for queued GPU work (a no-op on CPU): call before reading a clock."""
    dev = torch.device(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def seed_everything(seed: int, deterministic: bool = True) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA); make cuDNN deterministic."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return seed


def machine_name(dev: torch.device | str | None = None) -> str:
    """What ran a timing, in words: the GPU's name, or the CPU's model with the vector capability torch
    uses on it and whether it computes bf16 natively (e.g. "AMD EPYC, AVX2, bf16 emulated"), for every
    reported time."""
    import platform
    dev = device(dev)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type != "cpu":
        return dev.type
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = " ".join(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    bf16 = ", native bf16" if native_bf16() else ", bf16 emulated"
    return f"{model}, {torch.backends.cpu.get_cpu_capability()}{bf16}"


def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16 flags): only there does
    bf16 autocast speed E up; elsewhere it is emulated and many times slower (measure, don't assume)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def describe_runtime(dev: torch.device | str | None = None) -> dict:
    """Device, threads and versions: what every timing and every results file reports."""
    import platform
    dev = device(dev)
    info = {
        "device": str(dev),
        "device_name": machine_name(dev),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    return info
