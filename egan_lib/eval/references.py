"""Published robust accuracies on MNIST at eps = 0.3, to put our numbers in context (each with its attack,
its threat model and its source, in ``references.json`` beside this file). They are points at their eps,
not lines across every eps."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReferenceLine:
    """A published robust accuracy on MNIST, for a point in a figure."""
    name: str
    label: str
    accuracy: float      # fraction in [0, 1]
    eps: float           # L-inf budget on [0, 1] pixels
    attack: str          # the attack that produced the number (or how it is certified)
    source: str          # where the number is published
    note: str = ""       # the paper, the model, the leaderboard entry
    norm: str = "Linf"   # the threat model's norm; only L-inf references are drawn beside our eps axis


def _load() -> dict:
    rows = json.loads((Path(__file__).with_name("references.json")).read_text(encoding="utf-8"))
    refs = {r["name"]: ReferenceLine(**r) for r in rows}
    for r in refs.values():
        if not (0.0 <= r.accuracy <= 1.0 and 0.0 < r.eps <= 1.0):
            raise ValueError(f"references.json: {r.name} has accuracy {r.accuracy} / eps {r.eps} out of range")
        if r.norm not in ("Linf", "L2"):
            raise ValueError(f"references.json: {r.name} has norm {r.norm!r}; expected 'Linf' or 'L2'")
    return refs


_REFS = _load()
MADRY_PGD_AT_MNIST = _REFS["MADRY_PGD_AT_MNIST"]               # 100-step PGD, 50 restarts: 89.62%
MADRY_PGD_AT_MNIST_BEST = _REFS["MADRY_PGD_AT_MNIST_BEST"]     # best leaderboard attack: 88.00%
TRADES_MNIST = _REFS["TRADES_MNIST"]                           # best leaderboard attack: 92.46%
CROWN_IBP_MNIST = _REFS["CROWN_IBP_MNIST"]                     # certified: 92.54%
ATHALYE_DEFENSEGAN_MNIST = _REFS["ATHALYE_DEFENSEGAN_MNIST"]   # L2 0.005: 55% (Athalye et al. 2018)
REFERENCE_LINES = tuple(r for r in _REFS.values() if r.norm == "Linf")
#: The references at their best known attack (or certified), the ones a figure should show.
BEST_KNOWN = (MADRY_PGD_AT_MNIST_BEST, TRADES_MNIST, CROWN_IBP_MNIST)
