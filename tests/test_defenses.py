"""The seven defenses of chapter 05: the common interface, input checks, determinism, and one property
per method that shows it does its job (on synthetic stroke images and tiny networks: CPU seconds)."""
from __future__ import annotations

import math

import pytest
import torch

from egan_lib.config import get_profile
from egan_lib.defenses import (ALL_DEFENSES, EGAN, APEGANDefense, APEGANDiscriminator, APEGANGenerator,
                               AutoEncoderDefense, ConvAutoEncoder, DefenseGAN, DnCNN, DnCNNDefense,
                               MaskedConv2d, Original, PixelCNN, PixelDefend, pixeldefend_batch, bits_per_dim,
                               get_apegan, get_autoencoder, get_defenses, get_dncnn, get_pixelcnn, pixelcnn_nll,
                               train_apegan, train_autoencoder, train_dncnn, train_pixelcnn)
from egan_lib.models import Classifier, Encoder, Generator

torch.set_num_threads(min(2, torch.get_num_threads()))


def strokes(n: int, seed: int = 0) -> torch.Tensor:
    """Synthetic digit-like images: two bright line segments (about 2 px wide) on a black background,
    on the 8-bit grid (so uint8 round trips are exact)."""
    g = torch.Generator().manual_seed(seed)
    pts = 5 + 18 * torch.rand(n, 2, 2, 2, generator=g)                     # (image, segment, end, xy)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    p = torch.stack([xx, yy], -1).view(1, 1, 28, 28, 2)
    a, b = pts[:, :, 0].view(n, 2, 1, 1, 2), pts[:, :, 1].view(n, 2, 1, 1, 2)
    ab = b - a
    t = (((p - a) * ab).sum(-1, keepdim=True) / (ab * ab).sum(-1, keepdim=True).clamp_min(1e-6)).clamp(0, 1)
    dist = (p - (a + t * ab)).norm(dim=-1)                                   # (n, 2, 28, 28)
    img = (2.2 - dist).clamp(0, 1).amax(1, keepdim=True)
    return (img * 255).round() / 255


def tiny(name: str):
    """Each defense with tiny untrained networks (shape and interface tests)."""
    torch.manual_seed(0)
    if name == "Original":
        return Original()
    if name == "EGAN":
        return EGAN(Encoder(30, channels=4, same_blocks=1, valid_blocks=11), Generator(30, 4))
    if name == "DnCNN":
        return DnCNNDefense(DnCNN(3, 4))
    if name == "AutoEncoder":
        return AutoEncoderDefense(ConvAutoEncoder(3))
    if name == "APE-GAN":
        return APEGANDefense(APEGANGenerator(4))
    if name == "PixelDefend":
        return PixelDefend(PixelCNN(4, 1))
    return DefenseGAN(Generator(30, 4), steps=3, restarts=2, seed=0)


@pytest.fixture(scope="module")
def batch():
    x = strokes(5, seed=1)
    x[0, 0, 0, 0] = 0.5 + 1e-3          # one value off the 8-bit grid
    return x


# ---------------------------------------------------------------------------------------------- interface
@pytest.mark.parametrize("name", ALL_DEFENSES)
def test_purify_shape_range_dtype_and_name(name, batch):
    d = tiny(name)
    assert d.name == name
    assert d.differentiable == (name not in ("PixelDefend", "Defense-GAN"))
    assert d.device == torch.device("cpu")
    out = d.purify(batch)
    assert out.shape == batch.shape and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert torch.equal(d(batch), out)                        # __call__ = purify
    assert d.to("cpu") is d


@pytest.mark.parametrize("name", ALL_DEFENSES)
def test_purify_is_deterministic_and_independent_of_batch_size(name, batch):
    a, b = tiny(name), tiny(name)
    out = a.purify(batch)
    assert torch.equal(out, a.purify(batch))
    assert torch.equal(out, b.purify(batch))                 # a new object with the same seed
    assert torch.allclose(out, a.purify(batch, batch_size=2), atol=1e-5)


BAD = {
    "nan": (lambda x: x.clone().index_fill_(0, torch.tensor([0]), float("nan")), ValueError, "NaN"),
    "shape": (lambda x: x[:, :, :27], ValueError, r"\(N, 1, 28, 28\)"),
    "range": (lambda x: x * 2, ValueError, r"\[0, 1\]"),
    "empty": (lambda x: x[:0], ValueError, "empty"),
    "dtype": (lambda x: (x * 255).to(torch.uint8), TypeError, "floating-point"),
    "type": (lambda x: x.numpy(), TypeError, "torch.Tensor"),
}


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("name", ALL_DEFENSES)
def test_bad_input_is_rejected_with_a_clear_message(name, bad, batch):
    make, exc, msg = BAD[bad]
    with pytest.raises(exc, match=msg):
        tiny(name).purify(make(batch))


def test_bad_batch_size_is_rejected(batch):
    with pytest.raises(ValueError, match="batch_size"):
        Original().purify(batch, batch_size=0)


@pytest.mark.parametrize("name", ALL_DEFENSES)
def test_forward_accepts_inputs_that_require_grad(name, batch):
    d = tiny(name)
    x = batch.clone().requires_grad_(True)
    out = d.forward(x)
    assert out.shape == x.shape
    if d.differentiable:
        out.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert torch.allclose(out.detach(), d.purify(batch), atol=1e-5)


# ---------------------------------------------------------------------------------------------- Defense-GAN
@pytest.fixture(scope="module")
def g8():
    """A small random G whose images vary with z (DCGAN's N(0, 0.02) init gives a nearly constant G)."""
    torch.manual_seed(3)
    G = Generator(30, 8).eval()
    for m in G.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, 0.0, 30 ** -0.5)
        elif isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.normal_(m.weight, 0.0, 0.3)
    return G


def test_defensegan_reconstruction_error_falls_as_L_grows(g8):
    z_true = torch.randn(8, 30, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x = g8(z_true)
    errs = []
    for steps in (0, 5, 25, 100):
        _, e = DefenseGAN(g8, steps=steps, restarts=2, seed=0).project(x, return_error=True)
        errs.append(float(e.mean()))
    assert errs[0] > errs[1] > errs[2] > errs[3], errs
    assert errs[3] < 0.5 * errs[0], errs
    # the property fails when nothing is optimised (lr = 0): the check can tell
    _, e0 = DefenseGAN(g8, steps=25, restarts=2, lr=0.0, seed=0).project(x, return_error=True)
    assert float(e0.mean()) == pytest.approx(errs[0])


def test_defensegan_keeps_the_best_restart_and_accepts_a_start(g8):
    z_true = torch.randn(4, 30, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        x = g8(z_true)
    d = DefenseGAN(g8, steps=0, restarts=3, seed=0)
    z, e = d.project(x, return_error=True)
    starts = d.initial_latents(4)
    with torch.no_grad():
        per = torch.stack([(g8(starts[:, r]) - x).flatten(1).pow(2).mean(1) for r in range(3)], 1)
    assert torch.allclose(e, per.min(1).values, atol=1e-6)
    assert torch.allclose(z, starts[torch.arange(4), per.argmin(1)])
    # z0 = the true latent: already the optimum (a hybrid can start Defense-GAN at E(x))
    z1, e1 = d.project(x, z0=z_true, return_error=True)
    assert torch.allclose(z1, z_true) and float(e1.max()) < 1e-10
    assert d.project(x, z0=z_true.unsqueeze(1).repeat(1, 2, 1)).shape == (4, 30)
    with pytest.raises(ValueError, match="z0"):
        d.project(x, z0=torch.zeros(3, 30))
    other = DefenseGAN(g8, steps=0, restarts=3, seed=1)
    assert not torch.equal(other.initial_latents(4), starts)


def test_defensegan_checks_its_arguments(g8):
    for kw, msg in [({"steps": -1}, "steps"), ({"restarts": 0}, "restarts"), ({"lr": -1.0}, "lr"),
                    ({"seed": -1}, "seed"), ({"momentum": 2.0}, "momentum")]:
        with pytest.raises(ValueError, match=msg):
            DefenseGAN(g8, **kw)
    with pytest.raises(TypeError, match="generator"):
        DefenseGAN("G")


# ---------------------------------------------------------------------------------------------- PixelDefend
def test_pixelcnn_is_causal():
    """The logits of pixel (r, c) depend on pixels before it in raster order only (type A hides the pixel itself)."""
    torch.manual_seed(0)
    m = PixelCNN(8, 3).eval()
    x = torch.rand(2, 1, 28, 28)
    x2 = x.clone()
    x2[:, :, 10, 10] = 1 - x2[:, :, 10, 10]
    with torch.no_grad():
        d = (m(x) - m(x2)).abs().amax(dim=(0, 1))                           # (28, 28)
    assert d[:10].max() == 0 and d[10, :11].max() == 0                     # before and at (10, 10)
    assert d[10, 11:].max() > 0 and d[11:].max() > 0                        # after it
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, "C")


def test_incremental_purification_matches_the_full_network():
    """The cached, one-position-per-layer evaluation gives exactly model(output) at every pixel."""
    torch.manual_seed(1)
    m = PixelCNN(8, 2).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        out, logits = pixeldefend_batch(m, x, 0.1, return_logits=True)
        full = m(out)
    assert torch.allclose(logits, full, atol=1e-4)
    # and each pixel is the argmax of its window
    lv = (out * 255).round().long()
    win = ((torch.arange(256).view(1, 256, 1, 1) / 255 - x).abs() <= 0.1 + 1e-6)
    best = full.masked_fill(~win, float("-inf")).argmax(1, keepdim=True)
    assert torch.equal(best, lv)


@pytest.fixture(scope="module")
def trained_pixelcnn():
    torch.manual_seed(0)
    m = PixelCNN(6, 1)
    hist = train_pixelcnn(m, strokes(128, seed=2), epochs=3, batch_size=16, lr=2e-2, seed=0, progress=False,
                          test_images=strokes(32, seed=3))
    return m, hist


def test_pixelcnn_training_lowers_bits_per_dim(trained_pixelcnn):
    m, hist = trained_pixelcnn
    assert hist["epoch_bits_per_dim"][-1] < 0.7 * hist["epoch_bits_per_dim"][0]
    assert hist["test_bits_per_dim"] < 8.0 * 0.5 and hist["test_n"] == 32
    assert bits_per_dim(m, strokes(32, seed=3)) == pytest.approx(hist["test_bits_per_dim"], rel=1e-5)


def test_pixeldefend_stays_within_eps_and_raises_the_likelihood(trained_pixelcnn):
    m, _ = trained_pixelcnn
    x = strokes(16, seed=4)
    g = torch.Generator().manual_seed(0)
    noisy = (x + torch.randint(-20, 21, x.shape, generator=g) / 255).clamp(0, 1)
    d = PixelDefend(m, eps_def=32 / 255)
    out = d.purify(noisy)
    assert (out - noisy).abs().max() <= 32 / 255 + 1e-6
    assert torch.equal(out, (out * 255).round() / 255)                      # 8-bit values
    before, after = pixelcnn_nll(m, noisy), pixelcnn_nll(m, out)
    assert after.mean() < 0.8 * before.mean(), (before.mean(), after.mean())
    assert (after < before).float().mean() > 0.9
    # eps_def = 0 keeps the image (rounded to 8 bits): the property comes from the purification
    assert torch.allclose(PixelDefend(m, eps_def=0.0).purify(noisy), noisy, atol=1e-6)


def test_pixelcnn_nll_reads_uint8_and_float_alike(trained_pixelcnn):
    m, _ = trained_pixelcnn
    x = strokes(4, seed=5)
    u8 = (x * 255).round().to(torch.uint8)
    assert torch.allclose(pixelcnn_nll(m, u8[:, 0]), pixelcnn_nll(m, x))
    assert pixelcnn_nll(m, x).shape == (4,)
    with pytest.raises(ValueError, match="NaN"):
        pixelcnn_nll(m, x * float("nan"))
    with pytest.raises(TypeError, match="PixelCNN"):
        PixelDefend(DnCNN(3, 4))
    with pytest.raises(ValueError, match="eps_def"):
        PixelDefend(m, eps_def=-0.1)


# ---------------------------------------------------------------------------------------------- learned denoisers
def fgsm_pairs(classifier, x, eps, seed=0):
    from egan_lib.attacks import fgsm
    y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(seed))
    return fgsm(classifier, x, y, eps), y


@pytest.fixture(scope="module")
def clf():
    torch.manual_seed(0)
    return Classifier().eval()          # untrained: its FGSM sign pattern is still a +-eps perturbation


def _closer(defense, clean, attacked, factor):
    out = defense.purify(attacked)
    before = (attacked - clean).flatten(1).norm(dim=1).mean()
    after = (out - clean).flatten(1).norm(dim=1).mean()
    assert after < factor * before, (float(before), float(after))


def test_dncnn_learns_to_remove_the_perturbation(clf):
    x_train = strokes(512, seed=10)
    _, y_train = fgsm_pairs(clf, x_train, 0.0)
    net = DnCNN(4, 16)
    hist = train_dncnn(net, x_train, labels=y_train, classifier=clf, eps_max=0.3, epochs=2, batch_size=16,
                       lr=3e-3, seed=0, progress=False)
    assert hist["epoch_loss"][-1] < hist["epoch_loss"][0]
    x = strokes(64, seed=11)
    xa, _ = fgsm_pairs(clf, x, 0.2, seed=1)
    _closer(DnCNNDefense(net), x, xa, 0.6)


def test_autoencoder_learns_to_remove_the_perturbation(clf):
    net = ConvAutoEncoder(8, "relu")      # MagNet's layout; ReLU and 8 channels learn in fewer steps than sigmoid
    hist = train_autoencoder(net, strokes(512, seed=12), noise=0.1, epochs=4, batch_size=16, lr=3e-3, seed=0,
                             progress=False)
    assert hist["epoch_loss"][-1] < hist["epoch_loss"][0]
    x = strokes(64, seed=13)
    xa, _ = fgsm_pairs(clf, x, 0.2, seed=2)
    _closer(AutoEncoderDefense(net), x, xa, 0.8)


def test_apegan_learns_to_remove_the_perturbation(clf):
    x_train = strokes(512, seed=14)
    _, y_train = fgsm_pairs(clf, x_train, 0.0)
    G, D = APEGANGenerator(8), APEGANDiscriminator(8)
    hist = train_apegan(G, D, x_train, y_train, clf, eps=0.2, epochs=2, batch_size=16, lr=5e-3, seed=0,
                        progress=False)
    assert hist["epoch_mse"][-1] < hist["epoch_mse"][0] and hist["train_eps"] == 0.2
    x = strokes(64, seed=15)
    xa, _ = fgsm_pairs(clf, x, 0.2, seed=3)
    _closer(APEGANDefense(G), x, xa, 0.7)


def test_untrained_denoisers_do_not_pass_the_same_check(clf):
    """The distance check of the three tests above fails for untrained networks, even with the loosest of
    their factors (so it measures what training did)."""
    x = strokes(64, seed=11)
    xa, _ = fgsm_pairs(clf, x, 0.2, seed=1)
    torch.manual_seed(0)
    for d in (DnCNNDefense(DnCNN(4, 16)), AutoEncoderDefense(ConvAutoEncoder(8, "relu")),
              APEGANDefense(APEGANGenerator(8))):
        with pytest.raises(AssertionError):
            _closer(d, x, xa, 0.8)


def test_trainers_are_seeded_and_check_their_arguments(clf):
    x = strokes(64, seed=16)
    y = torch.randint(0, 10, (64,))

    def run(seed):
        torch.manual_seed(123)
        net = DnCNN(3, 4)
        h = train_dncnn(net, x, labels=y, classifier=clf, epochs=1, batch_size=32, seed=seed, progress=False)
        return h["loss"], net.net[0].weight.detach().clone()

    (h1, w1), (h2, w2), (h3, _) = run(0), run(0), run(1)
    assert h1 == h2 and torch.equal(w1, w2) and h1 != h3
    with pytest.raises(ValueError, match="epochs"):
        train_autoencoder(ConvAutoEncoder(), x, epochs=0, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train_pixelcnn(PixelCNN(4, 1), x, epochs=1, lr=-1.0, progress=False)
    with pytest.raises(ValueError, match="labels"):
        train_dncnn(DnCNN(3, 4), x, classifier=clf, epochs=1, progress=False)
    with pytest.raises(ValueError, match="eps"):
        train_apegan(APEGANGenerator(4), APEGANDiscriminator(4), x, y, clf, eps=-0.1, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_dncnn(DnCNN(3, 4), x * 3, epochs=1, progress=False)
    with pytest.raises(TypeError, match="Module"):
        train_autoencoder("net", x, epochs=1, progress=False)


def test_published_architectures():
    d = DnCNN()
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in d.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 17 and len(bns) == 15 and {c.out_channels for c in convs[:-1]} == {64}
    x = strokes(2)
    assert torch.allclose(d.eval()(x), (x - d.residual(x)).clamp(0, 1))
    ae = ConvAutoEncoder()
    assert ae.encoder(x).shape == (2, 3, 14, 14)                           # the bottleneck: 588 < 784 values
    assert APEGANGenerator().eval()(x).shape == x.shape and APEGANDiscriminator()(x).shape == (2,)
    assert PixelCNN(8, 2)(x).shape == (2, 256, 28, 28)


# ---------------------------------------------------------------------------------------------- workspace
def _synthetic_workspace(tmp_path):
    from egan_lib.data import Dataset
    from egan_lib.workflow import Workspace
    prof = get_profile("smoke", train_size=96, n_test=16, gan_epochs=1, gan_batch=32, enc_latents=64, enc_batch=32,
                       clf_batch=32, dncnn_layers=3, dncnn_channels=4, dncnn_batch=32, ae_epochs=1, ae_batch=32,
                       apegan_width=4, apegan_batch=32, pixelcnn_channels=4, pixelcnn_layers=1, pixelcnn_batch=32,
                       pixelcnn_test_size=8, defensegan_steps=2, defensegan_restarts=2, eval_batch=8)
    u8 = lambda x: (x[:, 0] * 255).round().to(torch.uint8)  # noqa: E731
    ds = Dataset("synthetic", u8(strokes(120, seed=20)), torch.arange(120) % 10, u8(strokes(20, seed=21)),
                 torch.arange(20) % 10, "test")
    ws = Workspace(prof, 0, torch.device("cpu"), None, tmp_path, progress=False)
    ws.cached("mnist", lambda: ds)
    return ws


def test_get_defenses_builds_all_seven_and_reloads_checkpoints(tmp_path, capsys):
    ws = _synthetic_workspace(tmp_path)
    ds = get_defenses(ws)
    assert tuple(ds) == ALL_DEFENSES
    x = strokes(4, seed=22)
    for name, d in ds.items():
        assert d.name == name and d.batch_size == 8
        assert d.purify(x).shape == x.shape
    _, hist = get_pixelcnn(ws)
    assert math.isfinite(hist["test_bits_per_dim"]) and hist["test_n"] == 8
    for kind in ("dncnn", "autoencoder", "apegan", "pixelcnn"):
        assert (ws.checkpoint_dir / f"{kind}.pt").exists()
    ws2 = _synthetic_workspace(tmp_path)                                    # a fresh run: everything loads
    for get in (get_dncnn, get_autoencoder, get_apegan, get_pixelcnn):
        assert get(ws2)[1]["_status"] == "loaded"
    assert get_pixelcnn(ws2)[1]["test_bits_per_dim"] == hist["test_bits_per_dim"]
    assert list(get_defenses(ws2, ["PixelDefend", "Original"])) == ["PixelDefend", "Original"]
    with pytest.raises(ValueError, match="unknown"):
        get_defenses(ws2, ["JPEG"])
    with pytest.raises(TypeError, match="Workspace"):
        get_defenses("ws")


def test_the_robust_egan_variants_train_once_resumably_and_stay_out_of_the_papers_list(tmp_path):
    from egan_lib.defenses import BEYOND_PAPER
    from egan_lib.defenses.robust_egan import robust_config, robust_encoder
    from egan_lib.workflow import Workspace
    ws = _synthetic_workspace(tmp_path)
    ws.profile = ws.profile.replace(robust_image_steps=64, robust_batch=32, robust_latents=64, robust_inner_steps=1)
    assert BEYOND_PAPER == ("EGAN-R", "EGAN-RC") and not set(BEYOND_PAPER) & set(ALL_DEFENSES)
    ds = get_defenses(ws, ["EGAN", "EGAN-R", "EGAN-RC"])
    x = strokes(4, seed=23)
    assert [d.name for d in ds.values()] == ["EGAN", "EGAN-R", "EGAN-RC"]
    assert all(d.purify(x).shape == x.shape for d in ds.values())
    E0 = ds["EGAN"].encoder
    for v, kind in (("EGAN-R", "robust_encoder"), ("EGAN-RC", "robust_encoder_clf")):
        assert ws.timings[kind]["status"] == "trained"
        assert (ws.checkpoint_dir / f"{kind}.pt").is_file() and not (ws.checkpoint_dir / f"{kind}.partial.pt").exists()
        assert any(not torch.equal(a, b) for a, b in zip(E0.state_dict().values(), ds[v].encoder.state_dict().values()))
    cfg = robust_config(ws, "EGAN-RC", E0, ds["EGAN"].generator, ws.classifier()[0])
    assert cfg["objective"] == "classifier" and "classifier_sha256" in cfg
    assert robust_config(ws, "EGAN-R", E0, ds["EGAN"].generator)["objective"] == ws.profile.robust_objective
    ws2 = Workspace(ws.profile, 0, torch.device("cpu"), None, tmp_path, progress=False)
    ws2.cached("mnist", lambda: ws.mnist())
    robust_encoder(ws2, "EGAN-R")
    assert ws2.timings["robust_encoder"]["status"] == "loaded"
    with pytest.raises(ValueError, match="variant"):
        robust_encoder(ws2, "EGAN-X")
