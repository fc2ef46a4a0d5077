"""An epsilon slider for the results chapter: a static one for the published book, a live one for a kernel.

``static_eps_slider`` precomputes everything: one small PNG per eps (clean, attacked and each defense's
output for one digit per class, with the classifier's predictions), embedded as base64, plus a table of
every method's accuracy at every eps. A few lines of inline JavaScript swap the frame and highlight the
table column when the ``<input type=range>`` moves. No external script, no CDN, no kernel, no network:
it works in the static HTML of the book, in JupyterLab and in Colab. Ids are fixed (``dom_id``), never
random, so executed notebooks compare equal (nbval).

``live_eps_slider`` recomputes FGSM for the chosen eps with ipywidgets: it needs a running kernel.
"""
from __future__ import annotations

import base64
import html
import io
import json
import re

import numpy as np
import torch
from matplotlib.figure import Figure

from ._validate import check_images, check_labels, check_module
from .plots import as_float_images, as_results, grid_array

__all__ = ["static_eps_slider", "html_string", "render_frame", "live_eps_slider"]

_DOM_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _png(fig: Figure, dpi: int) -> bytes:
    """PNG bytes of a figure, quantised to a small palette (digits are grey levels plus two label colours)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    try:
        from PIL import Image
        buf.seek(0)
        im = Image.open(buf).convert("RGB").quantize(colors=48, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        out = io.BytesIO()
        im.save(out, format="PNG", optimize=True)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - Pillow missing or too old: keep matplotlib's PNG
        return buf.getvalue()


def render_frame(examples, eps: float, methods=None, *, scale: int = 2, class_names=None) -> bytes:
    """One PNG (bytes): rows = clean, attacked and each defense's output; columns = one digit per class;
    the classifier's prediction under each image (green: right, red: wrong). ``scale``: screen pixels per
    image pixel (an integer, so the digits stay sharp)."""
    from .eval.results import Examples
    if not isinstance(examples, Examples):
        raise TypeError(f"examples: expected an egan_lib.eval.results.Examples (Results.examples), got {type(examples).__name__}")
    e = examples.nearest_eps(eps)
    cols, preds = examples.columns(e, methods)
    names = list(cols)
    labels = examples.labels.tolist()
    k = len(labels)
    imgs = torch.cat([as_float_images(cols[c], c) for c in names])   # row-major: one row per column name
    h, w = imgs.shape[2:]
    padx, pady = 3, 11  # pady leaves room for the prediction under each image
    cw, ch = w + padx, h + pady
    # the plots' tiling (torchvision's make_grid): each image with padx white columns on its right and pady
    # white rows under it, then a white margin of padx columns on the left and 2 rows on top
    cells = torch.nn.functional.pad(imgs, (0, padx, 0, pady), value=1.0)
    grid = np.pad(grid_array(cells, k, 0, 1.0), ((2, 0), (padx, 0)), constant_values=1.0)
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 8:
        raise ValueError(f"scale: expected an integer in 1..8 (screen pixels per image pixel), got {scale!r}")
    dpi = 100
    ppi = dpi / scale  # image pixels per inch
    gw, gh = grid.shape[1] / ppi, grid.shape[0] / ppi
    width_in, height_in = 1.45 + gw, 0.25 + gh
    fig = Figure(figsize=(width_in, height_in))
    ax = fig.add_axes((1.4 / width_in, 0.0, gw / width_in, gh / height_in))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([padx + cw * j + w / 2 for j in range(k)])
    ax.set_xticklabels([class_names[v] if class_names else str(v) for v in labels], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([2 + ch * i + h / 2 for i in range(len(names))])
    ax.set_yticklabels([f"attacked ε={e:.2f}" if c == "attacked" else c for c in names], fontsize=8)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    for i, c in enumerate(names):
        p = preds[c].tolist()
        for j in range(k):
            ok = p[j] == labels[j]
            ax.text(padx + cw * j + w / 2, 2 + ch * i + h + 0.5, str(p[j]), ha="center", va="top", fontsize=7,
                    color="#1a7f37" if ok else "#cf222e", fontweight="bold")
    return _png(fig, dpi)


def _fmt_pct(v: float) -> str:
    return f"{100 * v:.1f}"


def html_string(results, examples, eps_values=None, methods=None, *, dom_id: str = "eps", initial_eps: float = 0.5,
                scale: int = 2, class_names=None, title: str | None = None) -> str:
    """The self-contained HTML of the static slider (see ``static_eps_slider``)."""
    from .eval.results import Examples, Results, match_eps as _match_eps
    res = as_results(results)
    if isinstance(examples, Results):
        examples = examples.examples
    if not isinstance(examples, Examples):
        raise TypeError("examples: expected an egan_lib.eval.results.Examples (Results.examples) with the per-eps outputs")
    if not isinstance(dom_id, str) or not _DOM_ID_RE.match(dom_id):
        raise ValueError(f"dom_id: expected a fixed HTML id prefix like 'eps' (letters, digits, - and _), got {dom_id!r}")
    if eps_values is None:
        eps = [e for e in res.eps if any(abs(e - g) <= 1e-6 for g in examples.eps)]
    else:
        if isinstance(eps_values, (int, float)) or len(eps_values) == 0:
            raise ValueError(f"eps_values: expected a non-empty list of eps, got {eps_values!r}")
        eps = sorted(_match_eps(e, res.eps) for e in eps_values)
        for e in eps:
            examples.nearest_eps(e)  # raises when the examples lack this eps
    if not eps:
        raise ValueError("eps_values: the results and the examples share no eps")
    if methods is None:
        methods = [m for m in res.methods if m in examples.outputs]
    else:
        methods = [methods] if isinstance(methods, str) else list(methods)
        bad = [m for m in methods if m not in res.methods or m not in examples.outputs]
        if bad:
            raise ValueError(f"methods: {bad} lack results or examples; available: "
                             f"{[m for m in res.methods if m in examples.outputs]}")
    if not methods:
        raise ValueError("methods: no method has both results and examples")
    start = min(range(len(eps)), key=lambda i: abs(eps[i] - initial_eps))
    p = dom_id
    frames = []
    for i, e in enumerate(eps):
        b64 = base64.b64encode(render_frame(examples, e, methods, scale=scale, class_names=class_names)).decode("ascii")
        hidden = "" if i == start else ' style="display:none"'
        active = " eps-active" if i == start else ""
        frames.append(f'<img class="eps-frame{active}" data-index="{i}" data-eps="{e:.2f}" '
                      f'alt="clean, attacked (FGSM eps={e:.2f}) and purified digits with predictions"{hidden} '
                      f'src="data:image/png;base64,{b64}">')

    def td(i, text, tip=""):
        cls = ' class="eps-current"' if i == start else ""
        t = f' title="{html.escape(tip)}"' if tip else ""
        return f'<td data-eps-index="{i}"{cls}{t}>{text}</td>'

    head = "".join((f'<th data-eps-index="{i}"' + (' class="eps-current"' if i == start else "") + f">{e:.2f}</th>")
                   for i, e in enumerate(eps))
    rows = []
    for m in methods:
        cells = "".join(td(i, _fmt_pct(res.accuracy[m][e]),
                           f"{m} at eps {e:.2f}: {_fmt_pct(res.accuracy[m][e])}% "
                           f"(95% Wilson CI {_fmt_pct(res.ci95[m][e][0])} to {_fmt_pct(res.ci95[m][e][1])}; n = {res.n[m]})")
                        for i, e in enumerate(eps))
        rows.append(f"<tr><th scope=\"row\">{html.escape(m)}</th><td>{res.n[m]}</td>{cells}</tr>")
    if title is None:
        title = (f"{res.attack.upper()}, {res.threat_model} threat model: move the slider to change ε "
                 "(predictions in green when right, red when wrong)")
    eps_json = json.dumps([f"{e:.2f}" for e in eps])
    script = f"""<script>
(function () {{
  var root = document.getElementById("{p}-widget");
  if (!root) {{ return; }}
  var slider = document.getElementById("{p}-slider");
  var label = document.getElementById("{p}-label");
  var eps = {eps_json};
  function show(i) {{
    var frames = root.querySelectorAll("img.eps-frame");
    for (var k = 0; k < frames.length; k++) {{
      var on = (k === i);
      frames[k].style.display = on ? "" : "none";
      if (on) {{ frames[k].classList.add("eps-active"); }} else {{ frames[k].classList.remove("eps-active"); }}
    }}
    var cells = root.querySelectorAll("[data-eps-index]");
    for (var c = 0; c < cells.length; c++) {{
      if (+cells[c].getAttribute("data-eps-index") === i) {{ cells[c].classList.add("eps-current"); }}
      else {{ cells[c].classList.remove("eps-current"); }}
    }}
    label.textContent = eps[i];
    root.setAttribute("data-eps", eps[i]);
  }}
  slider.addEventListener("input", function () {{ show(+slider.value); }});
  slider.addEventListener("change", function () {{ show(+slider.value); }});
  show(+slider.value);
}})();
</script>"""
    style = f"""<style>
#{p}-widget {{ font-family: sans-serif; font-size: 13px; max-width: 100%; }}
#{p}-widget .eps-controls {{ display: flex; align-items: center; gap: 0.6em; margin: 0.4em 0; }}
#{p}-widget input[type=range] {{ width: 22em; }}
#{p}-widget img.eps-frame {{ max-width: 100%; height: auto; display: block; }}
#{p}-widget table {{ border-collapse: collapse; margin-top: 0.5em; font-size: 12px; }}
#{p}-widget th, #{p}-widget td {{ border: 1px solid #ccc; padding: 2px 5px; text-align: right; }}
#{p}-widget .eps-current {{ background: #ffe58f; font-weight: bold; }}
</style>"""
    n_note = sorted({res.n[m] for m in methods})
    caption = (f"Accuracy (%) of the classifier after each defense; {res.attack.upper()}, {res.threat_model} "
               f"threat model; n = {', '.join(map(str, n_note))} test images; hover a cell for its 95% Wilson interval.")
    return (f'<div class="eps-slider-widget" id="{p}-widget" data-eps="{eps[start]:.2f}">\n{style}\n'
            f'<div class="eps-title">{html.escape(title)}</div>\n'
            f'<div class="eps-controls"><label for="{p}-slider">FGSM ε</label>'
            f'<input type="range" id="{p}-slider" min="0" max="{len(eps) - 1}" step="1" value="{start}" '
            f'aria-label="FGSM epsilon">'
            f'<span>ε = <b id="{p}-label">{eps[start]:.2f}</b></span></div>\n'
            f'<div class="eps-frames">\n' + "\n".join(frames) + "\n</div>\n"
            f'<table class="eps-acc-table" id="{p}-table"><caption>{html.escape(caption)}</caption>'
            f'<thead><tr><th>method</th><th>n</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>\n'
            f"{script}\n</div>")


def static_eps_slider(results, examples, eps_values=None, methods=None, **kwargs):
    """An ``IPython.display.HTML`` slider over the precomputed eps grid (works without a kernel).

    results: ``Results`` or a results JSON dict (accuracies); examples: ``Results.examples`` (or the Results
    itself); eps_values/methods: subsets to show (default: all). Keyword arguments go to ``html_string``
    (dom_id, initial_eps, scale, class_names, title). Element ids: ``{dom_id}-slider`` (the range input),
    ``{dom_id}-label`` (the eps shown), ``{dom_id}-widget``; frames are ``img.eps-frame`` (the visible one has
    class ``eps-active``), table cells of the current eps have class ``eps-current``.
    """
    from IPython.display import HTML
    return HTML(html_string(results, examples, eps_values, methods, **kwargs))


def live_eps_slider(classifier, defenses, x, y, eps_values, *, batch_size: int = 256, device=None,
                    class_names=None, initial_eps: float = 0.5):
    """An ipywidgets slider that recomputes FGSM (oblivious: gradient through the classifier alone) for the
    chosen eps on the images x (e.g. one per class) and shows each defense's output with predictions.
    Needs a live kernel (in the static book use ``static_eps_slider``). Returns the ``interactive`` widget."""
    try:
        import ipywidgets as W
    except ImportError as e:
        raise ImportError("live_eps_slider needs ipywidgets (pip install 'ipywidgets>=8'); "
                          "static_eps_slider needs nothing") from e
    from .attacks import gradient_sign, predict
    from .eval.protocol import check_defenses as _check_defenses
    from ._validate import check_eps_list
    from .plots import plot_examples
    check_module(classifier, "classifier")
    x = check_images(x, "x")
    y = check_labels(y, n=x.shape[0], name="y")
    if x.shape[0] > 64:
        raise ValueError(f"x: {x.shape[0]} images; the live slider redraws every image, pass a few (e.g. one per class)")
    defenses = _check_defenses(defenses)
    eps = sorted(check_eps_list(eps_values, sorted_unique=False))
    dev = device if device is not None else next(classifier.parameters()).device
    sign = gradient_sign(classifier, x, y, batch_size=batch_size, device=dev)  # independent of eps
    cache = {}

    def frame(eps):
        if eps not in cache:
            xa = (x + eps * sign).clamp(0.0, 1.0)
            imgs = {"clean": x, "attacked": xa}
            for d in defenses:
                imgs[d.name] = d.purify(xa, batch_size=batch_size).detach().float().cpu()
            preds = {c: predict(classifier, v, batch_size=batch_size, device=dev) for c, v in imgs.items()}
            cache[eps] = (imgs, preds)
        imgs, preds = cache[eps]
        return plot_examples(imgs, labels=y, preds=preds, eps=eps, class_names=class_names,
                             title=f"FGSM ε = {eps:.2f} (oblivious threat model; green: right, red: wrong)")

    start = min(eps, key=lambda e: abs(e - initial_eps))
    slider = W.SelectionSlider(options=[(f"{e:.2f}", e) for e in eps], value=start, description="FGSM ε",
                               continuous_update=False)
    return W.interactive(frame, eps=slider)
