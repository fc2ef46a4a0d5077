"""The weights shipped with the package: within budget, verified by the manifest, and reproducing the
committed reference run (book/results/mnist-cpu.json) on its test subset."""
import hashlib
import json
from pathlib import Path

import pytest
import torch

import egan_lib as el
from egan_lib.attacks import fgsm, predict
from egan_lib.eval.results import read_results, select_results
from egan_lib.workflow import SHIPPED_WEIGHTS

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = SHIPPED_WEIGHTS / "cpu"
RESULTS = ROOT / "book" / "results" / "mnist-cpu.json"


def manifest():
    path = WEIGHTS / "manifest.json"
    assert path.exists(), f"no shipped weights: {path} is missing (run tools/ship_weights.py --profile cpu)"
    return json.loads(path.read_text())


def test_manifest_matches_files_and_budget():
    m = manifest()
    files = m["files"]
    assert {"generator.pt", "encoder.pt", "classifier.pt"} <= set(files)
    total = 0
    for name, info in files.items():
        data = (WEIGHTS / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"], name
        assert len(data) == info["bytes"], name
        total += len(data)
    assert total <= 20 * 1024 * 1024, f"shipped weights take {total / 1e6:.1f} MB"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return el.setup("cpu", 0, "cpu", None, tmp_path_factory.mktemp("art"))   # empty artifacts: shipped only


def test_shipped_weights_reproduce_the_reference_run(ws):
    ref = select_results(read_results(RESULTS), "oblivious")
    C, _ = ws.classifier()
    G, _ = ws.generator()
    E, _ = ws.encoder()
    assert {ws.timings[k]["status"] for k in ("classifier", "generator", "encoder")} == {"loaded-pretrained"}
    x, y = ws.test_set()
    assert ref["n_test"] == len(y)
    acc0 = int((predict(C, x) == y).sum()) / len(y)
    assert abs(acc0 - ref["methods"]["Original"]["accuracy"]["0.00"]) < 1e-9
    from egan_lib.defenses import EGAN
    egan = EGAN(E, G)
    x_adv = fgsm(C, x, y, 0.3)
    acc = int((predict(C, egan.purify(x_adv)) == y).sum()) / len(y)
    # E is stored in half precision: allow a flip of at most 1% of the images
    assert abs(acc - ref["methods"]["EGAN"]["accuracy"]["0.30"]) <= 0.01, (acc, ref["methods"]["EGAN"]["accuracy"]["0.30"])


def test_shipped_robust_encoders_were_produced_by_the_profiles_recipe(ws):
    """Chapter 08's EGAN-R and EGAN-RC ship: their producing config is the cpu profile's ``robust_*`` fields
    and the sha256 of the shipped E, G (and C), so a fresh clone loads them instead of training an hour."""
    from egan_lib.checkpoints import load_checkpoint
    from egan_lib.defenses.robust_egan import VARIANTS, robust_config
    E0, _ = ws.encoder()
    G, _ = ws.generator()
    C, _ = ws.classifier()
    for variant, (kind, _, uses_c) in VARIANTS.items():
        assert kind + ".pt" in manifest()["files"], f"{variant}: {kind}.pt is not shipped"
        cfg = ws.checkpoint_config(kind, **robust_config(ws, variant, E0, G, C if uses_c else None))
        ck = load_checkpoint(WEIGHTS / f"{kind}.pt", expected_config=cfg, kind=kind)   # raises on a mismatch
        assert ck.extra["history"]["settings"]["inner_steps"] == ws.profile.robust_inner_steps
