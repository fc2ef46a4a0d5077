"""Sphinx extension of the EGAN book: every number on the prose pages is read at build time.

Registered in _config.yml (``sphinx: local_extensions: egan_results: book/_ext``). It adds:

``results-table`` (directive)
    The accuracy table of a results file (``book/results/<dataset>-<profile>.json``, the results schema (egan_lib.eval.schema)
    written by ``egan_lib.eval.results.write_results``)::

        ```{results-table}
        :eps: 0.00 0.30 0.50
        :methods: Original EGAN Defense-GAN
        :threat-model: oblivious
        :file: results/mnist-cpu.json
        ```

    One row per method: accuracy in % with its 95% (Wilson) interval at each eps, the number of
    test images n and the time per image. Every option is optional (default: all eps, all methods
    in the paper's order, threat model "oblivious", the file of ``egan_results_file``). ``:file:`` is
    relative to the page (or to the book root when it starts with "/").

``result`` (role)
    One number in the prose: ``{result}`EGAN@0.30``` gives "91.2 % (95 % CI 88.4–93.5 %)";
    ``{result}`EGAN@time``` the time per image; ``{result}`EGAN@n``` its number of test images;
    ``{result}`EGAN@time_rank``` its place by time per image among the defenses (every method but
    "Original"), e.g. "the 2nd slowest of the 6 defenses";
    ``{result}`@n_test``` / ``@device`` / ``@profile`` / ``@dataset`` / ``@threat_model`` /
    ``@git_commit`` a field of the run. Reads the file of ``egan_results_file`` (threat model
    "oblivious"; ``METHOD@EPS@THREAT`` picks another one).

``profile`` (role)
    One setting of a profile in the prose: ``{profile}`cpu.n_test``` gives "1,000";
    ``{profile}`cpu.expensive_n_test/eval_parts``` divides two of them (read from egan_lib/config.py).

``run-times`` (directive)
    The wall time of each executed chapter, read from the metadata the pipeline stamps into the
    notebooks (``metadata.egan``: profile, device, threads, seconds, date, commit)::

        ```{run-times}
        :chapters: 01_data 02_gan
        ```

    (default: every ``NN_*.ipynb`` next to the page). With ``:profile: cpu``, a chapter executed with
    another profile is a build warning (the page's prose describes that profile).

``profile-table`` (directive)
    What each profile (smoke / cpu / paper) sets, read from ``egan_lib.config.PROFILES``: one row per
    setting that differs between profiles, with the comment of its field in ``egan_lib/config.py``.

A missing or invalid results file, a chapter without pipeline metadata, or an unknown method or eps
is a build WARNING (so ``jupyter-book build -W`` fails), and the page shows what is missing instead
of a number.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

__version__ = "1.0"

logger = logging.getLogger(__name__)

from egan_lib.defenses import ALL_DEFENSES as METHOD_ORDER  # noqa: E402  (the paper's order of the methods)
from egan_lib.eval.schema import validate_results_json  # noqa: E402  (the one schema check)


class ResultsError(Exception):
    """A results file that is missing or does not follow the schema."""


# ------------------------------------------------------------------------------------------ reading
def _check_entry(obj, where: str) -> None:
    """The library's schema check (egan_lib.eval.schema), reported as a ResultsError."""
    try:
        validate_results_json(obj)
    except ValueError as e:
        raise ResultsError(f"{where}: {e}") from None


def read_results(path: Path, threat_model: str = "oblivious") -> dict:
    """The results object with this threat model from a results file (a single object or a list of
    them, one per threat model). Raises ResultsError saying what is wrong."""
    if not path.is_file():
        raise ResultsError(f"results file {path} is missing (it is written by chapter 06 of the reference run: "
                           "python -m egan_lib.pipeline --profile cpu)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ResultsError(f"results file {path} is not valid JSON: {e}") from None
    items = obj if isinstance(obj, list) else [obj]
    for i, o in enumerate(items):
        _check_entry(o, f"{path.name}[{i}]" if isinstance(obj, list) else path.name)
    hits = [o for o in items if o["threat_model"] == threat_model]
    if len(hits) != 1:
        raise ResultsError(f"{path.name}: {len(hits)} entries with threat model {threat_model!r} "
                           f"(present: {[o['threat_model'] for o in items]})")
    return hits[0]


def _ordered_methods(entry: dict) -> list[str]:
    names = list(entry["methods"])
    return [m for m in METHOD_ORDER if m in names] + [m for m in names if m not in METHOD_ORDER]


def _eps_keys(entry: dict) -> list[str]:
    keys = set()
    for m in entry["methods"].values():
        keys |= set(m["accuracy"])
    return sorted(keys, key=float)


def eps_key(text: str) -> str:
    """'0.3' -> '0.30' (the key format of the results files)."""
    try:
        return f"{float(text):.2f}"
    except ValueError:
        raise ResultsError(f"eps {text!r} is not a number") from None


def fmt_pct(v: float) -> str:
    return f"{100 * v:.1f}"


def fmt_seconds(s: float) -> str:
    """A time per image with a readable unit: 6.7 ms, 120 µs, 1.4 s."""
    if not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def time_rank(entry: dict, method: str) -> str:
    """Where ``method`` stands by time per image among the defenses of a results entry (every method but
    "Original", the undefended classifier): "the slowest of the 6 defenses", "the 2nd slowest of ...";
    ties share the better place."""
    times = {m: r["seconds_per_image"] for m, r in entry["methods"].items() if m != "Original"}
    if method not in times:
        raise ResultsError(f"time_rank: {method!r} is not a defense of this results file; defenses: {sorted(times)}")
    rank = 1 + sum(t > times[method] for t in times.values())
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    place = "the slowest" if rank == 1 else f"the {rank}{suffix} slowest"
    return f"{place} of the {len(times)} defenses"


def _split(text: str | None) -> list[str]:
    return [t for t in re.split(r"[\s,]+", text or "") if t]


# ------------------------------------------------------------------------------------- table nodes
def _table(header: list[str], rows: list[list], title: str | None = None, classes=()) -> nodes.table:
    """A docutils table; a cell is a string or a list of inline nodes."""
    table = nodes.table(classes=["egan-table", *classes])
    if title:
        table += nodes.title(title, title)
    tgroup = nodes.tgroup(cols=len(header))
    table += tgroup
    for _ in header:
        tgroup += nodes.colspec(colwidth=1)

    def row(cells):
        r = nodes.row()
        for c in cells:
            entry = nodes.entry()
            para = nodes.paragraph()
            if isinstance(c, str):
                para += nodes.Text(c)
            else:
                para.extend(c)
            entry += para
            r += entry
        return r

    thead = nodes.thead()
    thead += row(header)
    tgroup += thead
    tbody = nodes.tbody()
    for cells in rows:
        tbody += row(cells)
    tgroup += tbody
    return table


class _EganDirective(SphinxDirective):
    def warn(self, msg: str, subtype: str) -> list[nodes.Node]:
        """Log a build warning and put a visible note in the page instead of the numbers."""
        logger.warning(msg, location=self.get_location(), type="egan", subtype=subtype)
        note = nodes.warning()
        note += nodes.paragraph(text=msg)
        return [note]

    def resolve(self, rel: str) -> Path:
        src = Path(self.env.srcdir)
        if rel.startswith("/"):
            return src / rel.lstrip("/")
        return Path(self.env.doc2path(self.env.docname)).parent / rel


# --------------------------------------------------------------------------------- results-table
class ResultsTable(_EganDirective):
    has_content = False
    option_spec = {
        "file": directives.unchanged,
        "eps": directives.unchanged,
        "methods": directives.unchanged,
        "threat-model": directives.unchanged,
        "caption": directives.unchanged,
        "name": directives.unchanged,
    }

    def run(self):
        opt = self.options
        if "file" in opt:
            path = self.resolve(opt["file"].strip())
        else:
            path = Path(self.env.srcdir) / self.config.egan_results_file
        self.env.note_dependency(str(path))
        try:
            entry = read_results(path, opt.get("threat-model", "oblivious").strip())
            eps = [eps_key(e) for e in _split(opt.get("eps"))] or _eps_keys(entry)
            methods = _split(opt.get("methods")) or _ordered_methods(entry)
            unknown = [m for m in methods if m not in entry["methods"]]
            if unknown:
                raise ResultsError(f"{path.name}: no method(s) {unknown}; present: {_ordered_methods(entry)}")
            for m in methods:
                absent = [e for e in eps if e not in entry["methods"][m]["accuracy"]]
                if absent:
                    raise ResultsError(f"{path.name}: {m} has no result at eps {absent}; "
                                       f"present: {sorted(entry['methods'][m]['accuracy'], key=float)}")
        except ResultsError as e:
            return self.warn(f"results-table: {e}", "results")

        best = {}
        for e in eps:
            best[e] = max(entry["methods"][m]["accuracy"][e] for m in methods)
        header = ["Method"] + [f"ε = {e}" for e in eps] + ["n", "time / image"]
        rows = []
        for m in methods:
            r = entry["methods"][m]
            cells = [[nodes.strong(text=m)] if m == "EGAN" else m]
            for e in eps:
                a, (lo, hi) = r["accuracy"][e], r["ci95"][e]
                acc = nodes.strong(text=fmt_pct(a)) if a == best[e] and len(methods) > 1 else nodes.Text(fmt_pct(a))
                ci = nodes.inline(text=f" [{fmt_pct(lo)}, {fmt_pct(hi)}]", classes=["egan-ci"])
                cells.append([acc, ci])
            cells.append(str(r.get("n", entry["n_test"])))
            cells.append(fmt_seconds(r["seconds_per_image"]))
            rows.append(cells)
        caption = opt.get("caption") or (
            f"Accuracy in % [95 % Wilson interval] under FGSM, {entry['threat_model']} threat model; "
            f"{entry['dataset']}, profile {entry['profile']}, device {entry['device']}, "
            f"commit {entry['git_commit']} (read from {path.name} at build time; best per column in bold)")
        table = _table(header, rows, title=caption, classes=["egan-results"])
        if "name" in opt:
            self.add_name(table)
        return [table]


# ------------------------------------------------------------------------------------ result role
class ResultRole(SphinxRole):
    """{result}`EGAN@0.30`, {result}`EGAN@time`, {result}`EGAN@n`, {result}`@n_test` ..."""

    FIELDS = ("n_test", "device", "profile", "dataset", "threat_model", "git_commit")

    def run(self):
        path = Path(self.env.srcdir) / self.config.egan_results_file
        self.env.note_dependency(str(path))
        parts = self.text.strip().split("@")
        try:
            if len(parts) not in (2, 3):
                raise ResultsError(f"expected METHOD@EPS, METHOD@time, METHOD@time_rank, METHOD@n or @FIELD, "
                                  f"got {self.text!r}")
            method, what = parts[0].strip(), parts[1].strip()
            entry = read_results(path, parts[2].strip() if len(parts) == 3 else "oblivious")
            if not method:
                if what not in self.FIELDS:
                    raise ResultsError(f"unknown field {what!r}; one of {list(self.FIELDS)}")
                text = str(entry[what])
            else:
                if method not in entry["methods"]:
                    raise ResultsError(f"no method {method!r} in {path.name}; present: {_ordered_methods(entry)}")
                r = entry["methods"][method]
                if what == "time":
                    text = fmt_seconds(r["seconds_per_image"])
                elif what == "time_rank":
                    text = time_rank(entry, method)
                elif what == "n":
                    text = str(r.get("n", entry["n_test"]))
                else:
                    e = eps_key(what)
                    if e not in r["accuracy"]:
                        raise ResultsError(f"{method} has no result at eps {e} in {path.name}")
                    lo, hi = r["ci95"][e]
                    text = f"{fmt_pct(r['accuracy'][e])} % (95 % CI {fmt_pct(lo)}–{fmt_pct(hi)} %)"
        except ResultsError as e:
            msg = f"result role: {e}"
            logger.warning(msg, location=self.get_location(), type="egan", subtype="results")
            return [nodes.problematic(self.rawtext, f"[missing result: {self.text}]")], []
        return [nodes.inline(self.rawtext, text, classes=["egan-result"])], []


# ----------------------------------------------------------------------------------- profile role
class ProfileRole(SphinxRole):
    """{profile}`cpu.n_test` gives "1,000": one setting of a profile, read from egan_lib/config.py at build
    time (integers with thousands separators; ``cpu.expensive_n_test/eval_parts`` divides two settings)."""

    def run(self):
        try:
            import importlib
            config = importlib.import_module("egan_lib.config")
        except Exception as e:  # noqa: BLE001 - reported as a build warning
            return self._fail(f"cannot import egan_lib.config ({type(e).__name__}: {e})")
        self.env.note_dependency(config.__file__)
        name, sep, expr = self.text.strip().partition(".")
        if not sep or name not in config.PROFILES:
            return self._fail(f"expected PROFILE.FIELD with a profile of {list(config.PROFILES)}, got {self.text!r}")
        prof = config.PROFILES[name]
        fields = [f.strip() for f in expr.split("/")]
        if len(fields) > 2 or any(not hasattr(prof, f) or f.startswith("_") for f in fields):
            return self._fail(f"{expr!r}: expected FIELD or FIELD/FIELD of the Profile")
        value = getattr(prof, fields[0])
        if len(fields) == 2:
            den = getattr(prof, fields[1])
            if not isinstance(value, int) or not isinstance(den, int) or not den or value % den:
                return self._fail(f"{expr!r}: not a whole division of two integer settings ({value!r} / {den!r})")
            value = value // den
        text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        return [nodes.inline(self.rawtext, text, classes=["egan-profile"])], []

    def _fail(self, msg):
        logger.warning(f"profile role: {msg}", location=self.get_location(), type="egan", subtype="profiles")
        return [nodes.problematic(self.rawtext, f"[missing setting: {self.text}]")], []


# ------------------------------------------------------------------------------------- run-times
def _fmt_wall(s: float) -> str:
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {sec:02d} s" if m else f"{s:.1f} s"


class RunTimes(_EganDirective):
    has_content = False
    option_spec = {"chapters": directives.unchanged, "caption": directives.unchanged,
                   "profile": directives.unchanged}

    def run(self):
        here = Path(self.env.doc2path(self.env.docname)).parent
        names = _split(self.options.get("chapters"))
        if names:
            paths = [here / (n if n.endswith(".ipynb") else n + ".ipynb") for n in names]
        else:
            paths = sorted(p for p in here.glob("[0-9][0-9]_*.ipynb") if ".failed." not in p.name)
        if not paths:
            return self.warn(f"run-times: no executed chapter notebooks (NN_*.ipynb) in {here}", "runtimes")
        infos, total, problems = [], 0.0, []
        for p in paths:
            self.env.note_dependency(str(p))
            try:
                info = json.loads(p.read_text(encoding="utf-8")).get("metadata", {}).get("egan")
            except (OSError, ValueError) as e:
                problems.append(f"{p.name}: unreadable ({e})")
                continue
            if not isinstance(info, dict) or not isinstance(info.get("seconds"), (int, float)):
                problems.append(f"{p.name}: no metadata.egan.seconds (not executed by egan_lib.pipeline)")
                continue
            total += info["seconds"]
            infos.append((p.stem, info))
        want = self.options.get("profile", "").strip()
        if want:
            problems += [f"{name}.ipynb was executed with profile {i.get('profile')!r}, this page describes {want!r}"
                         for name, i in infos if i.get("profile") != want]
        if problems:
            return self.warn("run-times: " + "; ".join(problems), "runtimes")
        # profile / device / threads: in the caption when every chapter shares them, else as columns
        shared = {k: {str(i.get(k, "?")) for _, i in infos} for k in ("profile", "device", "threads")}
        per_row = [k for k, v in shared.items() if len(v) > 1]
        header = ["Chapter"] + [k.capitalize() for k in per_row] + ["Wall time", "Executed", "Commit"]
        rows = [[name] + [str(i.get(k, "?")) for k in per_row]
                + [_fmt_wall(i["seconds"]), str(i.get("date", "?")), str(i.get("git_commit", "?"))]
                for name, i in infos]
        rows.append([[nodes.strong(text="total")]] + [""] * len(per_row)
                    + [[nodes.strong(text=_fmt_wall(total))], "", ""])
        run = ", ".join(f"{k} {next(iter(v))}" for k, v in shared.items() if len(v) == 1)
        caption = self.options.get("caption") or (
            "Measured wall time of each chapter" + (f" ({run})" if run else "")
            + ", read at build time from the executed notebooks' metadata (metadata.egan, stamped by "
            "egan_lib.pipeline)")
        table = _table(header, rows, title=caption, classes=["egan-runtimes"])
        return [table]


# --------------------------------------------------------------------------------- profile-table
def _field_comments(cls) -> dict[str, str]:
    """The trailing ``# comment`` of each field in the dataclass source."""
    import inspect
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for line in src.splitlines():
        m = re.match(r"\s+(\w+)\s*:\s*[^=#]+(?:=[^#]*)?#\s*(.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _fmt_value(name: str, v) -> str:
    if v is None:
        return {"train_size": "all 60,000", "expensive_n_test": "= n_test", "eps_values": "–"}.get(name, "–")
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        if not v:
            return "none"
        return f"{len(v)} values: " + ", ".join(f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool)
                                                  else str(x) for x in v)
    return str(v)


class ProfileTable(_EganDirective):
    has_content = False
    option_spec = {"profiles": directives.unchanged, "caption": directives.unchanged}

    def run(self):
        try:
            import dataclasses
            import importlib
            config = importlib.import_module("egan_lib.config")
        except Exception as e:  # noqa: BLE001 - any import failure is reported as a build warning
            return self.warn(f"profile-table: cannot import egan_lib.config ({type(e).__name__}: {e}); "
                             "install the project (pip install -e .)", "profiles")
        self.env.note_dependency(config.__file__)
        names = _split(self.options.get("profiles")) or list(config.PROFILES)
        unknown = [n for n in names if n not in config.PROFILES]
        if unknown:
            return self.warn(f"profile-table: unknown profile(s) {unknown}; present: {list(config.PROFILES)}",
                             "profiles")
        profs = [config.PROFILES[n] for n in names]
        comments = _field_comments(config.Profile)
        rows = []
        grids = [p.eps_grid() for p in profs]
        if any(g != grids[0] for g in grids):
            rows.append([[nodes.literal(text="eps grid"), nodes.Text(": the FGSM eps values evaluated")]]
                        + [f"{len(g)}: {g[0]:g}–{g[-1]:g}, "
                           + (f"step {p.eps_step:g}" if p.eps_values is None else "uneven")
                           for g, p in zip(grids, profs)])
        for f in dataclasses.fields(config.Profile):
            if f.name in ("name", "extra", "eps_step", "eps_values"):
                continue
            values = [getattr(p, f.name) for p in profs]
            if all(v == values[0] for v in values):
                continue
            label = [nodes.literal(text=f.name)]
            if f.name in comments:
                label.append(nodes.Text(f": {comments[f.name]}"))
            rows.append([label] + [_fmt_value(f.name, v) for v in values])
        caption = self.options.get("caption") or (
            "What each profile sets, where the profiles differ (read from egan_lib/config.py at build time)")
        return [_table(["Setting"] + names, rows, title=caption, classes=["egan-profiles"])]


def setup(app):
    app.add_config_value("egan_results_file", "book/results/mnist-cpu.json", "env", types=[str])
    app.add_directive("results-table", ResultsTable)
    app.add_directive("run-times", RunTimes)
    app.add_directive("profile-table", ProfileTable)
    app.add_role("result", ResultRole())
    app.add_role("profile", ProfileRole())
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
