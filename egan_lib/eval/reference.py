"""The reference evaluation: chapter 06's protocol at publication size, stored piece by piece.

The evaluated test subset is split into ``parts`` disjoint parts (image i goes to part i mod parts).
Each (method, part) is one call of ``egan_lib.eval.protocol.evaluate`` and one stored evaluation
(``egan_lib.eval.store``: reused while its data, eps grid, classifier and the method's settings are
unchanged), so an evaluation that takes hours runs in pieces of minutes: a stopped run loses at most
one piece, finished pieces can be committed as they come, and the chapter recomputes only what changed.

The pieces pool into one ``Results``: per method and eps, k correct of the n images of all parts, with
the Wilson interval of k / n, and the accuracy on each part (``Results.parts``), whose spread shows the
subset-to-subset variation beside the single-subset interval. A method evaluated on fewer images
(``n_per_method``, Defense-GAN's cost) takes the same number from the start of every part.

Run the pieces in the background (the chapter then reuses them):

    python -m egan_lib.eval.reference --profile cpu --results-dir book/results [--methods Defense-GAN]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

import torch

from .._validate import check_eps_list, check_images, check_labels, check_module, check_positive_int
from .protocol import check_defenses, evaluate
from .results import Results, join_results, subset_results
from .stats import wilson_interval
from .store import load_or_evaluate, protocol_settings, results_from_state, results_state


def split_parts(x: torch.Tensor, y: torch.Tensor, parts: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``parts`` disjoint parts of (x, y): part k holds images k, k + parts, k + 2 parts, ..."""
    x = check_images(x, "x")
    y = check_labels(y, n=x.shape[0], name="y")
    parts = check_positive_int(parts, "parts")
    return [(x[idx], y[idx]) for idx in part_indices(x.shape[0], parts)]


def part_indices(n: int, parts: int) -> list[torch.Tensor]:
    """The indices of each part of n images: part k holds k, k + parts, k + 2 parts, ..."""
    if n % parts:
        raise ValueError(f"parts: {n} images do not split into {parts} equal parts")
    return [torch.arange(k, n, parts) for k in range(parts)]


def evaluated_labels(y: torch.Tensor, parts: int, n: int) -> torch.Tensor:
    """The labels of the n images a method evaluated on n of them uses: n / parts from the start of each part."""
    y = check_labels(y, name="y")
    parts = check_positive_int(parts, "parts")
    n = check_positive_int(n, "n")
    if n % parts or n > len(y):
        raise ValueError(f"n: expected a multiple of parts = {parts}, at most {len(y)}, got {n}")
    return y[torch.cat([idx[:n // parts] for idx in part_indices(len(y), parts)])]


def parts_table(res: Results, eps=None, digits: int = 1) -> str:
    """Markdown: per method and eps, the pooled accuracy with its Wilson interval and the range (min - max)
    of the accuracies on the parts, with the number of parts and images per part."""
    if not isinstance(res, Results):
        raise TypeError(f"res: expected an egan_lib.eval.results.Results, got {type(res).__name__}")
    if not res.parts:
        raise ValueError("res: no per-part accuracies (an evaluation of a single part)")
    eps = res.eps if eps is None else [e for e in res.eps if any(abs(e - f) < 1e-9 for f in eps)]
    f = f".{digits}f"
    rows = ["| method | parts x images | " + " | ".join(f"eps {e:.2f}: pooled [95% CI]; parts min - max"
                                                     for e in eps) + " |", "|" + "---|" * (2 + len(eps))]
    for m in res.methods:
        if m not in res.parts:
            continue
        pa = res.parts[m]
        cells = []
        for e in eps:
            a, (lo, hi), v = res.accuracy[m][e], res.ci95[m][e], pa["accuracy"][e]
            cells.append(f"{100 * a:{f}} [{100 * lo:{f}}, {100 * hi:{f}}]; {100 * min(v):{f}} - {100 * max(v):{f}}")
        rows.append(f"| {m} | {len(pa['n'])} x {pa['n'][0]:,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def piece_path(store_dir, prefix: str, method: str, part: int) -> Path:
    return Path(store_dir) / prefix / f"{_slug(method)}-part{part}.pt"


def _strip_examples(res: Results) -> dict:
    state = results_state(res)
    state["examples"] = None
    return state


def pool(pieces: dict) -> Results:
    """One Results out of {method: [Results of part 0, part 1, ...]} (same eps grid): pooled k / n and its
    Wilson interval, the per-part accuracies, the median time per image over the parts, part 0's examples."""
    if not isinstance(pieces, dict) or not pieces:
        raise ValueError("pieces: expected a non-empty {method: [Results per part]} dict")
    methods = list(pieces)
    eps = pieces[methods[0]][0].eps
    acc, ci, n, spi, corr, preds, parts = {}, {}, {}, {}, {}, {}, {}
    examples, timing = None, {}
    for m in methods:
        rs = pieces[m]
        if len(rs) < 1 or any([round(e, 6) for e in r.eps] != [round(e, 6) for e in eps] for r in rs):
            raise ValueError(f"pieces[{m!r}]: every part must be evaluated on the same eps grid {eps}")
        n[m] = sum(r.n[m] for r in rs)
        acc[m], ci[m], corr[m], preds[m] = {}, {}, {}, {}
        for e in eps:
            k = sum(int(r.correct[m][e]) for r in rs)
            acc[m][e], ci[m][e], corr[m][e] = k / n[m], wilson_interval(k, n[m]), k
            if all(e in r.predictions.get(m, {}) for r in rs):
                preds[m][e] = torch.cat([r.predictions[m][e] for r in rs])
        if len(rs) > 1:
            parts[m] = {"n": [r.n[m] for r in rs], "accuracy": {e: [r.accuracy[m][e] for r in rs] for e in eps}}
        spi[m] = statistics.median(r.seconds_per_image[m] for r in rs)
        first = rs[0]
        if first.examples is not None:
            if examples is None:
                examples = first.examples
            else:
                examples.outputs[m] = first.examples.outputs[m]
                examples.preds[m] = first.examples.preds[m]
        if not timing:
            timing = {k: v for k, v in first.timing.items() if k != "per_method"}
            timing["per_method"] = {}
        timing["per_method"][m] = first.timing.get("per_method", {}).get(m, {})
    return Results(methods=methods, eps=list(eps), accuracy=acc, ci95=ci, n=n, seconds_per_image=spi,
                   examples=examples, correct=corr, predictions=preds, timing=timing,
                   threat_model=pieces[methods[0]][0].threat_model, attack=pieces[methods[0]][0].attack,
                   n_test=max(n.values()), parts=parts)


def reference_evaluation(classifier, defenses, x: torch.Tensor, y: torch.Tensor, eps_values, *, parts: int,
                         store_dir, prefix: str, n_per_method: dict | None = None, batch_size: int = 256,
                         reevaluate: bool = False, only=None, progress: bool = False, log=print,
                         **settings_extra) -> tuple[Results | None, list]:
    """Evaluate (or reuse) every (method, part) piece, then pool them (``pool``).

    x, y: the whole evaluated subset (split by ``split_parts``). n_per_method: {name: n} evaluates that
    method on n images in all, n / parts from the start of each part. only: the method names to run
    (the others are neither computed nor pooled; then ``None`` is returned in place of the Results).
    Returns (pooled Results, one info dict per piece with its method, part and store status)."""
    check_module(classifier, "classifier")
    defenses = check_defenses(defenses)
    eps_values = check_eps_list(eps_values, sorted_unique=False)
    split = split_parts(x, y, parts)
    size = split[0][0].shape[0]
    names = [d.name for d in defenses]
    n_per = {}
    for m, k in (n_per_method or {}).items():
        if m not in names:
            raise ValueError(f"n_per_method: unknown method {m!r}; methods are {names}")
        k = check_positive_int(k, f"n_per_method[{m!r}]")
        if k % parts or k // parts > size:
            raise ValueError(f"n_per_method[{m!r}]: {k} is not a multiple of parts = {parts} of at most "
                             f"{size * parts} images")
        n_per[m] = k // parts
    if only is not None:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"only: unknown method(s) {unknown}; methods are {names}")
    pieces, infos = {}, []
    for d in defenses:
        if only is not None and d.name not in only:
            continue
        pieces[d.name] = []
        for k, (xk, yk) in enumerate(split):
            npm = {d.name: n_per[d.name]} if d.name in n_per else None
            settings = protocol_settings(classifier, [d], xk, yk, eps_values, n_per_method=npm,
                                         batch_size=batch_size, part=k, parts=parts, **settings_extra)
            res, info = load_or_evaluate(
                piece_path(store_dir, prefix, d.name, k), settings,
                lambda: evaluate(classifier, [d], xk, yk, eps_values, batch_size=batch_size, n_per_method=npm,
                                 progress=progress),
                reevaluate=reevaluate, log=log, to_state=results_state if k == 0 else _strip_examples,
                from_state=results_from_state)
            pieces[d.name].append(res)
            infos.append({"method": d.name, "part": k, **info})
            if info["status"] == "computed":
                log(f"[reference] {d.name} part {k + 1}/{parts}: computed in {info['seconds']:.0f} s on "
                    f"{info['machine']} ({info['date']})")
    if only is not None and set(only) != set(names):
        return None, infos
    return pool(pieces), infos


def chapter_evaluation(ws, results_dir, *, reevaluate: bool = False, only=None, progress: bool | None = None,
                       log=print):
    """Chapter 06's reference evaluation on a workspace: the profile's subset, parts, eps grid and
    Defense-GAN's n; pieces stored under ``results_dir/evaluations/mnist-<profile>-oblivious/``.
    only: build and evaluate just these methods (the networks of the others are not even loaded).
    Returns (classifier, {name: defense}, pooled Results or None, infos)."""
    from ..defenses import ALL_DEFENSES, EXPENSIVE, get_defenses
    p = ws.profile
    C, _ = ws.classifier()
    methods = get_defenses(ws, ALL_DEFENSES if only is None else [m for m in ALL_DEFENSES if m in only])
    x, y = ws.test_set()
    n_exp = p.expensive_n_test or len(y)
    n_per = {m: n_exp for m in EXPENSIVE if m in methods and n_exp < len(y)}
    res, infos = reference_evaluation(
        C, list(methods.values()), x, y, p.eps_grid(), parts=p.eval_parts, n_per_method=n_per,
        store_dir=Path(results_dir) / "evaluations", prefix=f"mnist-{p.name}-oblivious",
        batch_size=p.eval_batch, reevaluate=reevaluate,
        progress=ws.progress if progress is None else progress, log=log, seed=ws.seed, profile=p.name)
    return C, methods, res, infos


def hybrid_evaluation(ws, results_dir, hybrids, *, egan, reference: Results, eps=(0.0, 0.5),
                      reevaluate: bool = False, progress: bool | None = None, log=print) -> tuple[Results, list]:
    """Chapter 07's hybrids (``HybridDefense``: Defense-GAN's search started at E(x)) beside EGAN and
    Defense-GAN, on the images chapter 06 evaluated Defense-GAN on (``expensive_n_test``: the same number
    from the start of every part), at ``eps``.

    EGAN and the hybrids are evaluated (or reused) as stored pieces under
    ``results_dir/evaluations/mnist-<profile>-hybrid/``; Defense-GAN is not recomputed: its numbers are
    taken from ``reference``, chapter 06's pooled Results (``chapter_evaluation``), whose pieces hold the
    same images. Returns (one Results with EGAN, the hybrids and Defense-GAN, the pieces' infos)."""
    p = ws.profile
    if not isinstance(reference, Results):
        raise TypeError(f"reference: expected chapter 06's pooled Results, got {type(reference).__name__}")
    dgan = "Defense-GAN"      # by name: it is the method the hybrids are compared with, expensive or not
    if dgan not in reference.methods:
        raise ValueError(f"reference: {dgan} is not in it (evaluated: {list(reference.methods)})")
    hybrids = check_defenses(list(hybrids))
    egan = check_defenses([egan])[0]
    if not hybrids:
        raise ValueError("hybrids: expected at least one HybridDefense")
    eps = check_eps_list(eps)
    x, y = ws.test_set()
    n_exp = p.expensive_n_test or len(y)
    if reference.n[dgan] != n_exp:
        raise ValueError(f"reference: {dgan} was evaluated on {reference.n[dgan]} images, the profile's "
                         f"expensive_n_test is {n_exp}; evaluate chapter 06 with this profile first")
    defs = [egan, *hybrids]
    res, infos = reference_evaluation(
        ws.classifier()[0], defs, x, y, eps, parts=p.eval_parts,
        n_per_method={d.name: n_exp for d in defs} if n_exp < len(y) else None,
        store_dir=Path(results_dir) / "evaluations", prefix=f"mnist-{p.name}-hybrid",
        batch_size=p.eval_batch, reevaluate=reevaluate,
        progress=ws.progress if progress is None else progress, log=log, seed=ws.seed, profile=p.name)
    ref = subset_results(reference, [dgan], eps)
    # the same split of the same subset and the same count per part: the same images
    want = reference.parts.get(dgan, {}).get("n", [reference.n[dgan]])
    got = res.parts.get(egan.name, {}).get("n", [res.n[egan.name]])
    if list(want) != list(got):
        raise ValueError(f"reference: {dgan}'s images per part {list(want)} differ from this evaluation's "
                         f"{list(got)}; it was made with other parts")
    return join_results(res, ref), infos


def method_settings(ws, methods: dict) -> dict:
    """{name: settings} for a results file: each defense's ``settings()`` (hyper-parameters, weights'
    sha256) plus ``training``: the producing config (epochs, budgets, data sizes) of each network it uses."""
    known = ws.training_configs()
    out = {}
    for name, d in methods.items():
        st = d.settings()
        st["training"] = {known[h][0]: known[h][1] for h in st.get("weights_sha256", []) if h in known}
        out[name] = st
    return out


def summary(infos: list) -> str:
    """One paragraph for a chapter: how many pieces were reused or computed, where, when, how long."""
    if not infos:
        return "no pieces"
    reused = [i for i in infos if i["status"] == "reused"]
    secs = sum(float(i["seconds"]) for i in infos)
    machines = sorted({f"{i['machine']} ({i['threads']} threads)" for i in infos})
    dates = sorted(i["date"] for i in infos)
    return (f"{len(infos)} stored pieces (method x part): {len(reused)} reused, {len(infos) - len(reused)} "
            f"computed now; together they took {secs / 60:.1f} min of evaluation on {', '.join(machines)}, "
            f"made between {dates[0]} and {dates[-1]}. --reevaluate (or reevaluate=True) recomputes them.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--results-dir", default="book/results")
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--methods", nargs="+", default=None, help="only these methods (default: all)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reevaluate", action="store_true")
    ap.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                    help="override profile fields, e.g. --set n_test=1000 eval_parts=4 (Python literals)")
    a = ap.parse_args(argv)
    import ast
    from ..config import get_profile
    from ..workflow import setup
    overrides = {}
    for item in a.set:
        field, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set: expected FIELD=VALUE, got {item!r}")
        try:
            overrides[field] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[field] = value
    try:
        profile = get_profile(a.profile, **overrides)
    except ValueError as e:
        ap.error(str(e))
    ws = setup(profile, a.seed, a.device, artifacts_dir=a.artifacts, threads=a.threads)
    _, _, res, infos = chapter_evaluation(ws, a.results_dir, reevaluate=a.reevaluate, only=a.methods)
    print(summary(infos))
    if res is not None:
        print(res.table(eps=[e for e in (0.0, 0.1, 0.3, 0.5) if e in res.eps]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
