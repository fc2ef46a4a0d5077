"""Figures (labelled, n in legends, return a Figure) and the eps sliders, on tiny synthetic results."""
from __future__ import annotations

import base64
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from egan_lib import plots, slider  # noqa: E402
from egan_lib.eval.protocol import evaluate  # noqa: E402
from test_evaluate import Identity, PatternClassifier, Zeros, pattern_data  # noqa: E402

EPS = [0.0, 0.25, 0.5, 0.75]


@pytest.fixture(scope="module")
def res():
    x, y = pattern_data(n=20)
    return evaluate(PatternClassifier(), [Identity(), Zeros("Zeros")], x, y, EPS,
                    n_per_method={"Zeros": 12}, timing_batch=4, timing_repeats=1)


@pytest.fixture(scope="module")
def res_json(res):
    return res.to_json_dict("synthetic", "test", "cpu", "abc1234")


def _labelled(ax):
    return bool(ax.get_xlabel().strip()) and bool(ax.get_ylabel().strip())


# ------------------------------------------------------------------------------------ Figs. 4 and 5
def test_accuracy_vs_eps(res, res_json):
    fig = plots.plot_accuracy_vs_eps(res)
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and _labelled(ax)
    assert "ε" in ax.get_xlabel() and "%" in ax.get_ylabel() and "oblivious" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["Original (n=20)", "Zeros (n=12)"]
    lines = ax.get_lines()
    assert len(lines) == 2 and len(ax.collections) == 2  # one Wilson band per method
    assert list(lines[0].get_xdata()) == EPS
    assert list(lines[0].get_ydata()) == [100.0 * res.accuracy["Original"][e] for e in EPS]
    # the same curves from the JSON file
    ax2 = plots.plot_accuracy_vs_eps(res_json, methods=["Zeros"]).axes[0]
    assert len(ax2.get_lines()) == 1
    assert np.allclose(ax2.get_lines()[0].get_ydata(), lines[1].get_ydata())
    with pytest.raises(ValueError, match="not in the results"):
        plots.plot_accuracy_vs_eps(res, methods=["EGAN"])
    with pytest.raises(ValueError, match="select_results"):
        plots.plot_accuracy_vs_eps([res_json])


def test_time_vs_accuracy(res):
    fig = plots.plot_time_vs_accuracy(res, eps=0.5)
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and _labelled(ax)
    assert ax.get_xscale() == "log" and "seconds" in ax.get_xlabel() and "0.50" in ax.get_ylabel()
    assert "batch 4" in ax.get_xlabel() and "n per method" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Original (n=20)", "Zeros (n=12)"]
    with pytest.raises(ValueError, match="not in the evaluated grid"):
        plots.plot_time_vs_accuracy(res, eps=0.3)


def test_given_axes_are_used(res):
    fig = Figure()
    ax = fig.add_subplot()
    assert plots.plot_accuracy_vs_eps(res, ax=ax) is fig and len(ax.get_lines()) == 2


# ------------------------------------------------------------------------------------ Figs. 2-3
def test_plot_examples_grid(res):
    fig = plots.plot_examples(res.examples, eps=0.75)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10 * 4  # 10 classes x (clean, attacked, Original, Zeros)
    top = [fig.axes[j].get_title() for j in range(4)]
    assert top == ["clean", "attacked\nε = 0.75", "Original", "Zeros"]
    assert fig.axes[0].get_ylabel() == "label 0" and fig.axes[4 * 9].get_ylabel() == "label 9"
    # predictions under each image: the clean digit is right, the attacked one (eps 0.75) wrong
    assert fig.axes[0].get_xlabel() == "pred 0" and fig.axes[1].get_xlabel() != "pred 0"
    imgs, preds = res.examples.columns(0.25)  # the dict form: {column: images}, here the first 3 classes
    d = plots.plot_examples({c: v[:3] for c, v in imgs.items()}, methods=["Zeros"], labels=[0, 1, 2],
                            preds={c: v[:3] for c, v in preds.items()}, eps=0.25)
    assert len(d.axes) == 3 * 3 and [a.get_title() for a in d.axes[:3]] == ["clean", "attacked\nε = 0.25", "Zeros"]
    with pytest.raises(ValueError, match="labels"):
        plots.plot_examples(imgs, labels=[0, 1])
    with pytest.raises(ValueError, match="eps"):
        plots.plot_examples(res.examples)


# ------------------------------------------------------------------------------------ helpers for ch. 01-04
def test_tile_images_places_each_image():
    imgs = torch.zeros(5, 1, 28, 28)
    for i in range(5):
        imgs[i, 0, 0, 0] = (i + 1) / 10
    grid = plots.tile_images(imgs, nrow=3, padding=2, pad_value=1.0)
    assert grid.shape == (2 + 2 * 30, 2 + 3 * 30)
    for i in range(5):
        r, c = divmod(i, 3)
        assert grid[2 + 30 * r, 2 + 30 * c] == pytest.approx((i + 1) / 10)
    assert grid[2 + 30, 2 + 60] == 1.0  # the empty sixth cell stays background
    fig = plots.image_grid(imgs, nrow=3, title="five")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "five"
    with pytest.raises(ValueError, match="nrow"):
        plots.tile_images(imgs, nrow=0)
    with pytest.raises(ValueError, match="shape"):
        plots.image_grid(torch.zeros(3, 3))


def test_plot_curves():
    hist = {"loss_d": [1.0, 0.8, 0.7], "loss_g": [2.0, 1.5, 1.2], "step": [10, 20, 30]}
    fig = plots.plot_curves(hist, ["loss_d", "loss_g"], ylabel="BCE loss")
    ax = fig.axes[0]
    assert _labelled(ax) and ax.get_ylabel() == "BCE loss" and ax.get_xlabel() == "training step"
    assert [ln.get_label() for ln in ax.get_lines()] == ["loss_d", "loss_g"]
    assert list(ax.get_lines()[0].get_xdata()) == [10, 20, 30]
    ax = plots.plot_curves({"epoch_loss": [3.0, 2.0]}, "epoch_loss").axes[0]
    assert ax.get_xlabel() == "epoch" and list(ax.get_lines()[0].get_xdata()) == [1, 2]
    with pytest.raises(ValueError, match="not in the history"):
        plots.plot_curves(hist, ["loss_x"])


# ------------------------------------------------------------------------------------ sliders
@pytest.fixture(scope="module")
def html(res):
    return slider.html_string(res, res.examples, initial_eps=0.5)


def test_static_slider_is_self_contained(html):
    assert not re.search(r"<script[^>]*\ssrc\s*=", html, re.I)  # no external script
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)  # nothing fetched from a URL
    assert "<link" not in html and "@import" not in html
    assert html.count("<script>") == 1


def test_static_slider_one_frame_per_eps_and_stable_ids(res, html):
    frames = re.findall(r'<img class="eps-frame[^"]*" data-index="(\d+)" data-eps="([0-9.]+)"', html)
    assert frames == [(str(i), f"{e:.2f}") for i, e in enumerate(EPS)]
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(pngs) == len(EPS) and len(set(pngs)) == len(EPS)
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    for i in ('id="eps-slider"', 'id="eps-label"', 'id="eps-widget"'):
        assert html.count(i) == 1
    assert re.search(r'<input type="range" id="eps-slider" min="0" max="3" step="1" value="2"', html)
    assert '<b id="eps-label">0.50</b>' in html
    # the frame of eps 0.50 is the only one shown before any script runs; its table column is highlighted
    shown = re.findall(r'<img class="eps-frame( eps-active)?" data-index="(\d)"[^>]*?(style="display:none")?\s+src', html)
    assert [(a, i) for a, i, hidden in shown if not hidden] == [(" eps-active", "2")]
    assert len(re.findall(r'data-eps-index="2" class="eps-current"', html)) == 1 + len(res.methods)
    other = slider.html_string(res, res.examples, eps_values=[0.0, 0.75], dom_id="fig7")
    assert 'id="fig7-slider"' in other and 'id="eps-slider"' not in other and other.count("<img class=\"eps-frame") == 2


def test_static_slider_table_and_html_object(res, html):
    for m in res.methods:
        assert f'<th scope="row">{m}</th><td>{res.n[m]}</td>' in html
    assert "oblivious" in html and "95% Wilson" in html
    obj = slider.static_eps_slider(res, res.examples, eps_values=[0.0])
    # IPython.display.HTML around the same string, and the same bytes on every call (nbval compares outputs)
    assert obj.data == slider.html_string(res, res.examples, eps_values=[0.0])
    with pytest.raises(ValueError, match="dom_id"):
        slider.html_string(res, res.examples, dom_id="1 bad id")
    with pytest.raises(ValueError, match="not in the evaluated grid"):
        slider.html_string(res, res.examples, eps_values=[0.3])


def test_static_slider_size_for_the_book_grid():
    """12 eps x 10 digits x 9 columns must stay under 1.5 MB: two noisy frames, extrapolated."""
    x, y = pattern_data(n=20)
    g = torch.Generator().manual_seed(0)
    noisy = [Identity(f"M{i}") for i in range(7)]
    r = evaluate(PatternClassifier(), noisy, torch.rand(20, 1, 28, 28, generator=g), y, [0.5, 1.0],
                 timing_batch=2, timing_repeats=1, timing_warmup=0)
    h = slider.html_string(r, r.examples)
    frame_bytes = sum(len(p) for p in re.findall(r'base64,([^"]+)"', h)) / 2
    assert 12 * frame_bytes + (len(h) - 2 * frame_bytes) < 1.5e6


def test_live_slider_recomputes_fgsm(res):
    pytest.importorskip("ipywidgets")
    x, y = pattern_data(n=3)
    w = slider.live_eps_slider(PatternClassifier(), [Identity(), Zeros("Zeros")], x, y, EPS)
    s = w.children[0]
    assert s.options == tuple((f"{e:.2f}", e) for e in EPS) and s.value == 0.5
    s.value = 0.25
    fig = w.result
    assert isinstance(fig, Figure) and len(fig.axes) == 3 * 4
    assert fig.axes[1].get_xlabel() == "pred 0"  # eps 0.25 < 0.5: the attacked digit 0 still reads 0
    s.value = 0.75
    assert w.result.axes[1].get_xlabel() == "pred 1"  # eps 0.75 > 0.5: digit 0 is now misread
    with pytest.raises(ValueError, match="one per class"):
        slider.live_eps_slider(PatternClassifier(), [Identity()], *pattern_data(n=80), EPS)


def _reference_tiling(arr, nrow, padding, pad_value):
    """The hand-written tiling plots used before torchvision's make_grid (the layout must not change)."""
    import math
    n, h, w = arr.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[padding + r * (h + padding): padding + r * (h + padding) + h,
            padding + c * (w + padding): padding + c * (w + padding) + w] = arr[i]
    return out


@pytest.mark.parametrize("n, nrow, padding", [(1, 8, 2), (2, 1, 0), (5, 3, 2), (13, 10, 5), (100, 10, 2)])
def test_tile_images_is_torchvisions_make_grid_with_the_same_layout(n, nrow, padding, monkeypatch):
    import torchvision.utils
    torch.manual_seed(n)
    x = torch.rand(n, 1, 28, 28)
    grid = plots.tile_images(x, nrow, padding=padding, pad_value=0.5)
    assert grid.dtype == np.float32
    assert np.array_equal(grid, _reference_tiling(x[:, 0].numpy(), nrow, padding, 0.5))
    if n > 1:   # it is make_grid that tiles
        calls = []
        real = torchvision.utils.make_grid
        monkeypatch.setattr(torchvision.utils, "make_grid", lambda *a, **k: calls.append(k) or real(*a, **k))
        plots.tile_images(x, nrow, padding=padding)
        assert calls and calls[0]["nrow"] == nrow and calls[0]["padding"] == padding


def test_uint8_images_are_rescaled_with_to_float_not_clipped_to_two_grey_levels():
    from egan_lib.data import to_float
    u8 = torch.arange(4 * 28 * 28, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(4, 1, 28, 28)
    grid = plots.tile_images(u8, 2, padding=0)
    assert np.array_equal(grid, plots.tile_images(to_float(u8), 2, padding=0))
    assert len(np.unique(grid)) == 256                       # every grey level, not just 0 and 1
    assert np.array_equal(plots.tile_images(u8[:, 0].numpy(), 2, padding=0), grid)   # (N, H, W) arrays too
    fig = plots.image_grid(u8, nrow=2)
    shown = fig.axes[0].images[0].get_array()
    assert len(np.unique(np.asarray(shown))) > 200
    assert fig.axes[0].get_title() == "4 images"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_plots_accept_any_floating_dtype(dtype):
    x = torch.rand(3, 1, 28, 28)
    grid = plots.tile_images(x.to(dtype), 3)
    assert np.allclose(grid, plots.tile_images(x.to(dtype).float(), 3))
    assert plots._to_numpy_images(x.to(dtype)).dtype == np.float32


def test_plots_refuse_ambiguous_integer_images_and_nan():
    with pytest.raises(TypeError, match=r"float images in \[0, 1\] or uint8 images in 0..255, got dtype torch.int64"):
        plots.tile_images(torch.zeros(2, 1, 28, 28, dtype=torch.int64), 2)
    bad = torch.rand(2, 1, 28, 28)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        plots.image_grid(bad)
    with pytest.raises(ValueError, match="padding"):
        plots.tile_images(torch.rand(2, 1, 28, 28), 2, padding=-1)
    with pytest.raises(TypeError, match="expected a tensor or array"):
        plots.tile_images([[0.0]], 2)


def test_slider_frames_use_the_same_tiling(res):
    """render_frame tiles through plots (make_grid); its grid keeps the earlier hand-written layout."""
    from egan_lib.plots import grid_array as _grid
    import torch.nn.functional as F
    k = 7
    cols = [torch.rand(k, 1, 28, 28) for _ in range(3)]
    got = np.pad(_grid(F.pad(torch.cat(cols), (0, 3, 0, 11), value=1.0), k, 0, 1.0), ((2, 0), (3, 0)),
                 constant_values=1.0)
    want = np.ones((3 * 39 + 2, k * 31 + 3), dtype=np.float32)
    for i, c in enumerate(cols):
        for j in range(k):
            want[2 + 39 * i: 2 + 39 * i + 28, 3 + 31 * j: 3 + 31 * j + 28] = c[j, 0].numpy()
    assert np.array_equal(got, want)
    png = slider.render_frame(res.examples, 0.25)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
