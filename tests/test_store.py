"""Stored evaluations: reused only when every setting matches, recomputed when asked or when anything changed."""
from __future__ import annotations

import torch

from egan_lib.defenses import DefenseGAN, Original
from egan_lib.eval import store
from egan_lib.eval.protocol import evaluate
from conftest import LinearClassifier
from egan_lib.models import Generator




def _setup():
    torch.manual_seed(1)
    x, y = torch.rand(20, 1, 28, 28), torch.arange(20) % 10
    C = LinearClassifier().eval()
    defs = [Original(), DefenseGAN(Generator(width=4).eval(), steps=2, restarts=1)]
    return C, defs, x, y


def test_a_stored_evaluation_is_reused_only_with_the_same_settings(tmp_path):
    C, defs, x, y = _setup()
    calls = []

    def compute():
        calls.append(1)
        return evaluate(C, defs, x, y, [0.0, 0.5], timing_repeats=1, timing_batch=4)

    path = tmp_path / "ev.pt"
    s = store.protocol_settings(C, defs, x, y, [0.0, 0.5], seed=0)
    res, info = store.load_or_evaluate(path, s, compute, log=lambda m: None)
    assert info["status"] == "computed" and len(calls) == 1 and path.is_file()
    res2, info2 = store.load_or_evaluate(path, s, compute, log=lambda m: None)
    assert info2["status"] == "reused" and len(calls) == 1
    assert res2.accuracy == res.accuracy and res2.seconds_per_image == res.seconds_per_image
    assert torch.equal(res2.examples.outputs["Defense-GAN"][0.5], res.examples.outputs["Defense-GAN"][0.5])
    assert "reused" in store.describe(info2) and info2["machine"]
    # recompute on request
    assert store.load_or_evaluate(path, s, compute, reevaluate=True, log=lambda m: None)[1]["status"] == "computed"
    # anything it depends on: the defense's settings, its weights, the data
    defs[1].steps = 3
    logs = []
    s2 = store.protocol_settings(C, defs, x, y, [0.0, 0.5], seed=0)
    assert store.load_or_evaluate(path, s2, compute, log=logs.append)[1]["status"] == "computed"
    assert "defenses" in logs[0]
    with torch.no_grad():
        defs[1].generator.net[-2].bias.add_(0.1)
    assert store.settings_key(store.protocol_settings(C, defs, x, y, [0.0, 0.5], seed=0)) != store.settings_key(s2)
    assert store.settings_key(store.protocol_settings(C, defs, x.flip(0), y.flip(0), [0.0, 0.5], seed=0)) \
        != store.settings_key(s2)


def test_a_corrupt_store_is_recomputed(tmp_path):
    C, defs, x, y = _setup()
    path = tmp_path / "ev.pt"
    path.write_bytes(b"not a torch file")
    s = store.protocol_settings(C, defs, x, y, [0.0], seed=0)
    logs = []
    _, info = store.load_or_evaluate(path, s, lambda: evaluate(C, defs, x, y, [0.0], timing_repeats=1,
                                                              timing_batch=4), log=logs.append)
    assert info["status"] == "computed" and "unreadable" in logs[0]


def test_results_file_records_each_methods_settings():
    from egan_lib.eval.schema import validate_results_json
    C, defs, x, y = _setup()
    res = evaluate(C, defs, x, y, [0.0], timing_repeats=1, timing_batch=4)
    s = store.protocol_settings(C, defs, x, y, [0.0])
    obj = res.to_json_dict("mnist", "t", git_commit="abc1234", settings={d["name"]: d for d in s["defenses"]})
    validate_results_json(obj)
    dg = obj["methods"]["Defense-GAN"]["settings"]
    assert dg["L_steps"] == 2 and dg["R_restarts"] == 1 and len(dg["weights_sha256"][0]) == 64
