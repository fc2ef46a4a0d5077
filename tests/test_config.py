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
    bf16 = "native bf16" if config.native_bf16() else "bf16 emulated"
    assert name.endswith(f", {torch.backends.cpu.get_cpu_capability()}, {bf16}") and len(name) > len(", AVX2")
    assert config.describe_runtime("cpu")["device_name"] == name
    with pytest.raises(ValueError):
        config.machine_name("tpu")


# ---------------------------------------------------------------------------- every profile field is checked
@pytest.mark.parametrize("change, field", [
    ({"eps_values": (0.5, 0.1)}, "eps_values"),          # unsorted: refused, never reordered
    ({"eps_values": (0.0, 0.1, 0.1)}, "eps_values"),     # duplicate
    ({"eps_values": (0.1, 0.5)}, "eps_values"),          # must start at 0
    ({"eps_values": (0.0, 1.5)}, "eps_values"),          # out of [0, 1]
    ({"eps_values": ()}, "eps_values"),
    ({"eps_values": (0.0, 0.125)}, "eps_values"),        # eps_grid keeps 2 decimals: 0.125 would become 0.12
    ({"n_test": -5}, "n_test"),
    ({"n_test": 0}, "n_test"),
    ({"n_test": 2.5}, "n_test"),
    ({"n_test": 20_000}, "n_test"),                      # MNIST has 10,000 test images
    ({"train_size": 0}, "train_size"),
    ({"dncnn_train_size": -1}, "dncnn_train_size"),
    ({"gan_epochs": 0}, "gan_epochs"),
    ({"clf_batch": True}, "clf_batch"),
    ({"eps_step": 0.3}, "eps_step"),                     # does not divide 1
    ({"eps_step": 0}, "eps_step"),
    ({"eps_step": float("nan")}, "eps_step"),
    ({"gan_lr": 0.0}, "gan_lr"),
    ({"enc_lr": -1e-3}, "enc_lr"),
    ({"ae_noise": 1.5}, "ae_noise"),
    ({"pixeldefend_eps": -0.1}, "pixeldefend_eps"),
    ({"campaign_eps": (0.3, 0.1)}, "campaign_eps"),
    ({"campaign_eps": (0.0, 0.1)}, "campaign_eps"),      # (0, 1]: eps 0 is no attack
    ({"dgan_eps": 0.1}, "dgan_eps"),
    ({"hybrid_steps": ()}, "hybrid_steps"),
    ({"hybrid_steps": (20, 5)}, "hybrid_steps"),
    ({"bf16": 1}, "bf16"),
    ({"enc_valid_blocks": 14}, "enc_valid_blocks"),
    ({"clf_shift": -1}, "clf_shift"),
    ({"extra": []}, "extra"),
    ({"enc_schedule": "linear"}, "enc_schedule"),
    ({"enc_image_steps": 0}, "enc_image_steps"),
    ({"enc_train_bf16": "yes"}, "enc_train_bf16"),
    ({"eval_parts": 0}, "eval_parts"),
    ({"eval_parts": 7}, "n_test"),                      # 64 / 1,000 images do not split into 7 parts
])
def test_profile_fields_are_checked_with_an_error_naming_the_field(change, field):
    with pytest.raises(ValueError, match=rf"profile 'smoke', field {field}\b"):
        get_profile("smoke", **change)
    with pytest.raises(ValueError, match=rf"field {field}\b"):
        get_profile("cpu").replace(**change)


def test_profiles_are_checked_when_made_and_good_overrides_pass():
    with pytest.raises(ValueError, match=r"profile 'bad/name', field name"):
        Profile(name="bad/name", train_size=None, n_test=10, eps_step=0.05)
    with pytest.raises(ValueError, match=r"field n_test: expected an integer >= 1, got -5"):
        Profile(name="mine", train_size=None, n_test=-5, eps_step=0.05)
    p = get_profile("smoke", eps_values=(0.0, 0.1, 0.3), train_size=None, enc_same_blocks=0, campaign_eps=(0.3,),
                    hybrid_steps=(3,), n_test=10_000)
    assert p.eps_grid() == [0.0, 0.1, 0.3] and p.validate() is p


def test_eps_grid_lives_in_config_without_importing_attacks():
    import subprocess
    import sys
    code = ("import sys, egan_lib.config as c; g = c.get_profile('cpu'); assert c.eps_grid(0.25) == [0, .25, .5, .75, 1]; "
            "c.get_profile('paper').eps_grid(); print('egan_lib.attacks' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    with pytest.raises(ValueError, match="does not divide"):
        config.eps_grid(0.3)


def test_seed_everything_accepts_numpy_integers_and_refuses_seeds_torch_cannot_take():
    import numpy as np
    assert seed_everything(np.int64(7)) == 7
    with pytest.raises(ValueError, match="below 2\\*\\*64"):
        seed_everything(2 ** 64)


def test_device_refuses_a_cuda_index_the_machine_lacks(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:3' was asked for but this machine has 1 CUDA device"):
        device("cuda:3")


def test_native_bf16_reads_the_cpu_flags(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("model name\t: X\nflags\t\t: fpu sse avx2 avx512f\n")
    assert config.native_bf16(str(f)) is False
    f.write_text("model name\t: X\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    assert config.native_bf16(str(f)) is True
    f.write_text("flags\t\t: fpu amx_bf16\n")
    assert config.native_bf16(str(f)) is True
    assert config.native_bf16(str(tmp_path / "missing")) is False



def test_parts_must_divide_the_subset_and_the_expensive_n():
    p = get_profile("smoke", n_test=400, eval_parts=4, expensive_n_test=200)
    assert p.eval_parts == 4
    with pytest.raises(ValueError, match="expensive_n_test: 600 > n_test"):
        get_profile("smoke", n_test=400, eval_parts=4, expensive_n_test=600)
    with pytest.raises(ValueError, match="expensive_n_test: 202 images do not split"):
        get_profile("smoke", n_test=400, eval_parts=4, expensive_n_test=202)


def test_the_reference_profile_splits_its_subset_into_parts():
    p = get_profile("cpu")
    assert p.n_test >= 1000 and p.eval_parts >= 3 and p.n_test % p.eval_parts == 0
    assert p.expensive_n_test >= 500 and p.expensive_n_test % p.eval_parts == 0
    assert (p.defensegan_steps, p.defensegan_restarts) == (200, 10)        # the paper's L and R
    with pytest.raises(ValueError, match="expensive_n_test: 600 > n_test"):
        get_profile("smoke", n_test=400, eval_parts=4, expensive_n_test=600)
