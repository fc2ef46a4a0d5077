"""Reading the budget study's results (``egan_lib.studies.budget``): tables, findings and the figure of chapter 03."""
from __future__ import annotations


def _pct(a: dict) -> str:
    lo, hi = a["ci95"]
    return f"{100 * a['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def gan_table(res: dict) -> str:
    """Markdown: one row per G snapshot (epochs): the classifier's rarest and commonest class among 10,000
    generated digits, its mean confidence, and EGAN's clean accuracy with the short encoder (n, interval)."""
    snaps = sorted(res["gan"]["snapshots"], key=lambda s: s["epochs"])
    if not snaps:
        raise ValueError("res: no G snapshot measured yet")
    rows = ["| G epochs | rarest class (share) | commonest class (share) | mean confidence | EGAN clean, short E (%) | n |",
            "|---|---|---|---|---|---|"]
    for s in snaps:
        h = s["class_histogram"]
        tot = sum(h)
        lo, hi = min(range(10), key=h.__getitem__), max(range(10), key=h.__getitem__)
        rows.append(f"| {s['epochs']} | {lo} ({100 * h[lo] / tot:.1f}%) | {hi} ({100 * h[hi] / tot:.1f}%) | "
                    f"{s['mean_confidence']:.3f} | {_pct(s['egan_clean'])} | {s['egan_clean']['n']} |")
    return "\n".join(rows)


def encoder_table(res: dict) -> str:
    """Markdown: one row per E budget: reconstruction errors (held-out G(z), real digits) and EGAN's
    accuracy clean and under oblivious FGSM at each eps measured, with n and intervals."""
    budgets = sorted(res["encoder"]["budgets"], key=lambda b: b["image_steps"])
    if not budgets:
        raise ValueError("res: no encoder budget measured yet")
    eps = sorted(budgets[0]["egan"], key=float)
    machines = any("machine" in b for b in budgets)
    head = ("| image-steps | steps | recon. error ‖x − G(E(x))‖², G(z) | recon. error ‖x − G(E(x))‖², real | "
            + " | ".join(f"EGAN eps {e} (%)" for e in eps) + " | n |" + (" trained on |" if machines else ""))
    rows = [head, "|" + "---|" * (5 + len(eps) + machines)]
    for b in budgets:
        g, r = b["recon_gen"], b["recon_real"]
        rows.append(f"| {b['image_steps']:,} | {b['steps']:,} | {g['mean']:.2f} ± {g['ci95_half']:.2f} | "
                    f"{r['mean']:.2f} ± {r['ci95_half']:.2f} | " + " | ".join(_pct(b["egan"][e]) for e in eps)
                    + f" | {b['egan'][eps[0]]['n']} |" + (f" {b.get('machine', '?')} |" if machines else ""))
    return "\n".join(rows)


def _separated(accs: list) -> bool:
    """Whether the 95% intervals of the lowest and the highest of these accuracies do not overlap."""
    lo = min(accs, key=lambda a: a["accuracy"])
    hi = max(accs, key=lambda a: a["accuracy"])
    return lo["ci95"][1] < hi["ci95"][0]


def encoder_findings(res: dict) -> dict:
    """What the E-budget table says, as numbers a chapter can quote: the first and last budgets'
    reconstruction errors and EGAN accuracies (clean and eps 0.3, as "acc% [lo, hi]"), the change over
    the last doubling, whether that change lies within the intervals (``accuracy_flat``) and, per
    accuracy, its direction (``trend_clean``, ``trend_eps03``: "flat", "up" or "down"), and whether the
    eps-0.3 accuracy rises with every budget (``eps03_monotone``; ``eps03_range``: its min and max, in %,
    over the budgets after the first)."""
    budgets = sorted(res["encoder"]["budgets"], key=lambda b: b["image_steps"])
    if len(budgets) < 2:
        raise ValueError("res: at least two encoder budgets are needed to read a trend")
    for b in budgets:
        if "0.00" not in b["egan"] or "0.30" not in b["egan"]:
            raise ValueError(f"res: budget {b['image_steps']:,} lacks EGAN's accuracy at eps 0.00 or 0.30")

    def row(b):
        return {"image_steps": b["image_steps"], "recon_gen": b["recon_gen"]["mean"],
                "recon_real": b["recon_real"]["mean"], "clean": _pct(b["egan"]["0.00"]),
                "eps03": _pct(b["egan"]["0.30"])}
    prev, last = budgets[-2], budgets[-1]

    def overlap(e):
        a, b = prev["egan"][e]["ci95"], last["egan"][e]["ci95"]
        return a[0] <= b[1] and b[0] <= a[1]

    def trend(e):   # "flat" (the intervals overlap), "up" or "down" over the last doubling
        if overlap(e):
            return "flat"
        return "up" if last["egan"][e]["accuracy"] > prev["egan"][e]["accuracy"] else "down"
    return {"first": row(budgets[0]), "last": row(last), "previous": row(prev),
            "trend_clean": trend("0.00"), "trend_eps03": trend("0.30"),
            "previous_machine": prev.get("machine", "?"), "last_machine": last.get("machine", "?"),
            "eps03_monotone": all(b["egan"]["0.30"]["accuracy"] >= a["egan"]["0.30"]["accuracy"]
                                  for a, b in zip(budgets, budgets[1:])),
            "eps03_range": (100 * min(b["egan"]["0.30"]["accuracy"] for b in budgets[1:]),
                            100 * max(b["egan"]["0.30"]["accuracy"] for b in budgets[1:])),
            "eps03_range_separated": _separated([b["egan"]["0.30"] for b in budgets[1:]]),
            "last_doubling_recon_real": last["recon_real"]["mean"] - prev["recon_real"]["mean"],
            "last_doubling_recon_gen": last["recon_gen"]["mean"] - prev["recon_gen"]["mean"],
            "last_doubling_clean": 100 * (last["egan"]["0.00"]["accuracy"] - prev["egan"]["0.00"]["accuracy"]),
            "last_doubling_eps03": 100 * (last["egan"]["0.30"]["accuracy"] - prev["egan"]["0.30"]["accuracy"]),
            "accuracy_flat": overlap("0.00") and overlap("0.30")}


def plot_budget(res: dict):
    """Two panels: reconstruction error against E's training budget (log x), and EGAN's accuracy against
    it at each eps with 95% Wilson bands (oblivious FGSM)."""
    from matplotlib.figure import Figure
    budgets = sorted(res["encoder"]["budgets"], key=lambda b: b["image_steps"])
    if not budgets:
        raise ValueError("res: no encoder budget measured yet")
    x = [b["image_steps"] for b in budgets]
    fig = Figure(figsize=(11, 4), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    for key, label in (("recon_gen", "held-out G(z)"), ("recon_real", "real test digits")):
        m = [b[key]["mean"] for b in budgets]
        h = [b[key]["ci95_half"] for b in budgets]
        a1.errorbar(x, m, yerr=h, marker="o", capsize=3, label=f"{label} (n = {budgets[0][key]['n']})")
    a1.set(xscale="log", xlabel="E's training budget (image-steps)", ylabel="||x - G(E(x))||^2 per image",
           title="Reconstruction error (mean, 95% CI)")
    a1.legend(fontsize=8)
    for e in sorted(budgets[0]["egan"], key=float):
        acc = [100 * b["egan"][e]["accuracy"] for b in budgets]
        lo = [100 * b["egan"][e]["ci95"][0] for b in budgets]
        hi = [100 * b["egan"][e]["ci95"][1] for b in budgets]
        a2.plot(x, acc, "o-", label=f"eps {e}")
        a2.fill_between(x, lo, hi, alpha=0.2)
    a2.set(xscale="log", xlabel="E's training budget (image-steps)", ylabel="EGAN accuracy (%)", ylim=(0, 100),
           title=f"EGAN under oblivious FGSM (n = {budgets[0]['egan'][next(iter(budgets[0]['egan']))]['n']}, 95% Wilson)")
    machines = [b.get("machine") for b in budgets]
    for ax in (a1, a2):
        # one tick per measured budget ("16k", "512k"), no minor labels (they overlap on a log axis)
        ax.set_xticks(x, [f"{v / 1000:g}k" if v >= 1000 else f"{v:g}" for v in x])
        ax.minorticks_off()
        # where the rows change machine (a second training run), a dotted line says so
        for i in range(1, len(budgets)):
            if machines[i] != machines[i - 1] and machines[i] and machines[i - 1]:
                xm = (x[i - 1] * x[i]) ** 0.5
                ax.axvline(xm, color="gray", ls=":", lw=1)
                ax.annotate("second run", (xm, 0.02), xycoords=("data", "axes fraction"), rotation=90,
                            fontsize=7, color="gray", ha="right", va="bottom")
    a2.legend(fontsize=8)
    return fig
