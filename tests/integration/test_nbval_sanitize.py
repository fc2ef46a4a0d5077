"""tests/nbval_sanitize.cfg removes run-to-run noise and nothing else (parsed the way nbval parses it)."""
from __future__ import annotations

import re

import pytest
from nbval.plugin import get_sanitize_patterns

from book_env import REPO

CFG = REPO / "tests" / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    for regex, replace in get_sanitize_patterns(CFG.read_text(encoding="utf-8")):
        text = re.sub(regex, replace, text)
    return text


def test_every_rule_compiles_and_empty_replacements_survived():
    raw = CFG.read_text(encoding="utf-8")
    rules = get_sanitize_patterns(raw)
    assert len(rules) >= 10, rules
    for regex, _ in rules:
        re.compile(regex)
    # a rule whose "replace: " lost its trailing space would be silently dropped by nbval's parser
    assert raw.count("\nregex: ") == len(rules), "a regex: line has no matching 'replace: ' line"


@pytest.mark.parametrize("a, b", [
    # load-or-train: the first run trains, the nbval rerun loads
    ("C: 10,630 parameters\nClassifier epoch 1/1: loss 0.4123\n", "C: 10,630 parameters\n"),
    ("[egan_lib] classifier: trained in 3.2 s, saved /tmp/a/clf.pt\nok\n",
     "[egan_lib] classifier: loaded /work/x/scratch/artifacts/clf.pt\nok\n"),
    ("GAN epoch 1/10: loss_D 1.234  loss_G 0.987\ndone", "done"),
    # timings, rates, progress bars
    ("E forward: 6.71 ms/image, total 12.3 s", "E forward: 7.02 ms/image, total 9.8 s"),
    ("250 µs per image; 45.1 it/s", "312 µs per image; 39.0 it/s"),
    ("100%|██████████| 8/8 [00:03<00:00,  2.41it/s]\nresult 3\n", "result 3\n"),
    ("wall time 1:02:03", "wall time 0:59:59"),
    # paths, hashes, dates, addresses, ids
    ("checkpoint /tmp/pytest-1/artifacts/g.pt", "checkpoint /work/main/scratch/artifacts/g.pt"),
    ("commit 51ee477-dirty, sha256 f11bb9e41d6c1b6c", "commit 2273069, sha256 0a1b2c3d4e5f6a7b"),
    ("run on 2026-11-25 05:00 UTC", "run on 2027-01-02 17:45 UTC"),
    ("<Model at 0x7f3a2b1c9d10>", "<Model at 0x7f00deadbeef>"),
    ('<div id="3f2b8c1e-9a4d-4e2f-8b1a-0c9d8e7f6a5b">', '<div id="00000000-1111-4222-8333-444444444444">'),
])
def test_noise_is_removed(a, b):
    assert sanitize(a) == sanitize(b), (sanitize(a), sanitize(b))


@pytest.mark.parametrize("a, b", [
    ("clean accuracy 99.12% (n = 10,000)", "clean accuracy 98.12% (n = 10,000)"),
    ("test images per class: [980, 1135, 1032]", "test images per class: [980, 1134, 1032]"),
    ("2005530 parameters", "2005531 parameters"),
    ("eps 0.30: 72.0%", "eps 0.25: 72.0%"),
    ("first ten test labels: [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]", "first ten test labels: [7, 2, 1, 0, 4, 1, 4, 9, 5, 8]"),
    ("10 samples", "11 samples"),
])
def test_results_are_not_masked(a, b):
    assert sanitize(a) != sanitize(b), f"{a!r} and {b!r} must still differ after sanitizing"
