import pytest
import torch

from egan_lib import explore
from egan_lib.models import Classifier, Encoder, Generator


def test_class_counts_and_examples():
    y = torch.tensor([0, 1, 1, 2, 2, 2] * 3)
    assert explore.class_counts(y, 3) == [3, 6, 9]
    idx = explore.examples_per_class(y, 3, num_classes=3)
    assert idx.shape == (3, 3) and all((y[idx[c]] == c).all() for c in range(3))
    with pytest.raises(ValueError, match="fewer than k"):
        explore.examples_per_class(y, 4, num_classes=3)


def test_pixel_stats():
    x = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    x[:, :, :14] = 255
    s = explore.pixel_stats(x)
    assert s["share_zero"] == pytest.approx(0.5) and s["share_255"] == pytest.approx(0.5)
    assert s["mean_ink_per_image"] == pytest.approx(392)
    with pytest.raises(TypeError):
        explore.pixel_stats(x.float())


def test_nearest_neighbour_and_squared_error():
    a = torch.rand(5, 1, 28, 28)
    assert torch.allclose(explore.nearest_neighbour_distance(a, torch.cat([a, torch.rand(3, 1, 28, 28)])),
                          torch.zeros(5), atol=1e-3)
    assert torch.allclose(explore.squared_error(a, a), torch.zeros(5))
    with pytest.raises(ValueError):
        explore.squared_error(a, a[:2])
    with pytest.raises(ValueError):
        explore.squared_error(a * float("nan"), a)


def test_reconstruct_interpolate_quality():
    torch.manual_seed(0)
    G, E = Generator(width=8).eval(), Encoder(channels=4, same_blocks=1).eval()
    x = torch.rand(6, 1, 28, 28)
    r = explore.reconstruct(E, G, x, batch_size=4)
    assert r.shape == x.shape and 0 <= r.min() and r.max() <= 1
    z0, z1 = torch.zeros(2, 30), torch.ones(2, 30)
    im = explore.interpolate(G, z0, z1, steps=5)
    assert im.shape == (10, 1, 28, 28)
    assert torch.allclose(im[0], G(z0[:1])[0], atol=1e-5) and torch.allclose(im[4], G(z1[:1])[0], atol=1e-5)
    q = explore.sample_quality(Classifier().eval(), x)
    assert abs(sum(q["class_share"]) - 1) < 1e-3 and 0.1 <= q["mean_confidence"] <= 1
    m, h, n = explore.mean_ci(torch.tensor([1.0, 2.0, 3.0]))
    assert (m, n) == (2.0, 3) and h > 0


def test_compare_precision_reports_a_paired_bf16_cost_and_speed():
    torch.manual_seed(0)
    G, E = Generator(width=8).eval(), Encoder(channels=4, same_blocks=1).eval()
    x = torch.rand(6, 1, 28, 28)
    res = explore.compare_precision(E, G, x, repeats=1)
    fp32 = explore.squared_error(x, explore.reconstruct(E, G, x))
    assert res["fp32"]["mean_sq_error"] == pytest.approx(float(fp32.mean()), rel=1e-5)
    assert res["fp32"]["n"] == res["bf16"]["n"] == res["paired"]["n"] == 6
    # the paired difference is the difference of the two means, with its own interval
    assert res["paired"]["error_diff"] == pytest.approx(
        res["bf16"]["mean_sq_error"] - res["fp32"]["mean_sq_error"], abs=1e-4)
    assert res["paired"]["ci95_half"] >= 0
    assert res["paired"]["speedup"] == pytest.approx(res["fp32"]["ms_per_image"] / res["bf16"]["ms_per_image"])
    assert res["paired"]["capability"] == torch.backends.cpu.get_cpu_capability()
    assert res["paired"]["threads"] == torch.get_num_threads()
    text = explore.precision_report(res).splitlines()
    assert len(text) == 4 and text[0].startswith("fp32: error") and text[1].startswith("bf16: error")
    assert f"{res['paired']['error_diff']:+.3f}" in text[2] and res["paired"]["capability"] in text[3]
    with pytest.raises(ValueError, match="compare_precision"):
        explore.precision_report({"fp32": {}})
    with pytest.raises(ValueError, match="at least 2"):
        explore.compare_precision(E, G, x[:1])
    with pytest.raises(TypeError):
        explore.compare_precision(E, "G", x)
