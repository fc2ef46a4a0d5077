"""The independent attack library is installed by the project's own files (dev.py installs
requirements-nodeps.txt with --no-deps) and its standard AutoAttack runs on this toolchain."""
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent


def test_torchattacks_is_the_pinned_version_and_installed_without_its_pins():
    import torchattacks
    pinned = [line.split("==")[1].strip() for line in (ROOT / "requirements-nodeps.txt").read_text().splitlines()
              if line.startswith("torchattacks==")]
    assert pinned == [torchattacks.__version__]
    assert "--no-deps" in (ROOT / "dev.py").read_text()


def test_standard_autoattack_runs_and_stays_in_the_ball():
    import torchattacks
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    x = torch.rand(4, 1, 28, 28)
    y = model(x).argmax(1)
    aa = torchattacks.AutoAttack(model, norm="Linf", eps=0.3, version="standard", n_classes=10, seed=0)
    assert [type(a).__name__ for a in aa._autoattack.attacks] == ["APGD", "APGDT", "FAB", "Square"]
    adv = aa(x, y)
    assert (adv - x).abs().max() <= 0.3 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (model(adv).argmax(1) == y).float().mean() < 1.0     # a linear model at eps 0.3 falls
