"""Profiles, device selection and seeding (egan_lib.config)."""
from __future__ import annotations

import pytest
import torch

import egan_lib
from egan_lib import config
from egan_lib.config import PROFILES, Profile, device, get_profile, seed_everything
from egan_lib.models import build_encoder, count_parameters


def test_the_three_profiles_exist():
    assert {"smoke", "cpu", "paper"} <= set(PROFILES)
    for name in ("smoke", "cpu", "paper"):
        p = get_profile(name)
        assert isinstance(p, Profile) and p.name == name


def test_get_profile_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"unknown profile 'nope'.*cpu.*paper.*smoke"):
        get_profile("nope")
    with pytest.raises(TypeError, match="profile"):
        get_profile(3)


def test_get_profile_overrides_and_rejects_unknown_fields():
    p = get_profile("smoke", train_size=256, clf_epochs=1)
    assert (p.train_size, p.clf_epochs, p.name) == (256, 1, "smoke")
    assert get_profile("smoke").train_size != 256          # the registered profile is untouched
    assert get_profile(p) is p
    with pytest.raises(ValueError, match="no_such_field"):
        get_profile("smoke", no_such_field=1)


@pytest.mark.parametrize("name", ["cpu", "paper"])
def test_reference_profiles_use_the_papers_encoder(name):
    p = get_profile(name)
    assert p.latent_dim == 30
    assert (p.enc_channels, p.enc_same_blocks, p.enc_valid_blocks) == (100, 10, 11)
    assert count_parameters(build_encoder(p)) == 2_005_530


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper"])
def test_eps_grid_of_every_profile_runs_from_0_to_1(name):
    grid = get_profile(name).eps_grid()
    assert grid[0] == 0.0 and grid[-1] == 1.0
    assert grid == sorted(set(grid))


def test_device_cpu_and_auto():
    assert device("cpu") == torch.device("cpu")
    assert device(torch.device("cpu")) == torch.device("cpu")
    assert device(None).type in ("cpu", "cuda", "mps")
    assert device("auto") == device(None)
    assert egan_lib.device is device


def test_device_cuda_unavailable_raises_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"'cuda' was asked for but torch\.cuda\.is_available\(\) is False"):
        device("cuda")
    with pytest.raises(ValueError, match="cuda"):
        device("cuda:1")
    assert device("auto").type != "cuda"


def test_device_rejects_nonsense():
    with pytest.raises(ValueError, match="not a device name"):
        device("gpu0")
    with pytest.raises(TypeError, match="expected 'auto'"):
        device(3)


def test_seed_everything_makes_randn_reproducible():
    seed_everything(123)
    a = torch.randn(5)
    seed_everything(123)
    b = torch.randn(5)
    seed_everything(124)
    c = torch.randn(5)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        seed_everything(bad)


def test_machine_name_names_the_cpu_and_its_vector_capability():
    name = config.machine_name("cpu")
    assert name.endswith(", " + torch.backends.cpu.get_cpu_capability()) and len(name) > len(", AVX2")
    assert config.describe_runtime("cpu")["device_name"] == name
    with pytest.raises(ValueError):
        config.machine_name("tpu")
