"""The rule of every Profile field (``egan_lib.config.Profile.validate`` calls ``check_field``): sizes,
epochs and steps are positive integers, rates positive, fractions in [0, 1], eps grids sorted, attack
specs parsed. No torch here."""
from __future__ import annotations

import re

from ._validate import check_eps, check_eps_list, check_fraction, check_positive_float, check_positive_int

MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MIN_ZERO = {"enc_same_blocks", "clf_shift", "pixelcnn_layers"}     # may be 0
_MAX = {"n_test": MNIST_TEST_SIZE, "robust_study_n": MNIST_TEST_SIZE, "pixelcnn_test_size": MNIST_TEST_SIZE, "campaign_n": MNIST_TEST_SIZE,
        "pixeldefend_n": MNIST_TEST_SIZE,
        "expensive_n_test": MNIST_TEST_SIZE, "dgan_n": MNIST_TEST_SIZE,
        "train_size": MNIST_TRAIN_SIZE, "enc_valid_blocks": 13}
_OPTIONAL_SIZES = {"train_size", "expensive_n_test", "enc_image_steps", "dncnn_train_size", "ae_train_size",
                   "apegan_train_size", "pixelcnn_train_size"}
_RATES = {"gan_lr", "enc_lr", "clf_lr", "dncnn_lr", "ae_lr", "apegan_lr", "pixelcnn_lr", "defensegan_lr", "robust_lr",
          "robust_ce_weight"}
_FRACTIONS = {"dncnn_eps_max", "dncnn_sigma_max", "ae_noise", "apegan_train_eps", "pixeldefend_eps", "robust_eps",
              "robust_clean_fraction"}
_FLAGS = {"bf16", "channels_last", "enc_train_bf16", "robust_bf16", "campaign_in_book"}
_ATTACK_SPECS = {"autoattack", "restarts_attack", "robust_study_attack", "robust_latent_attack"}
_EPS_TUPLES = {"campaign_eps", "autoattack_eps", "dgan_eps", "restarts_eps", "robust_study_train_eps",
               "robust_study_eps", "robust_eval_eps", "robust_autoattack_eps"}
_SCHEDULES = ("cosine", "wsd")


def _check_size(name: str, value) -> None:
    v = check_positive_int(value, name, minimum=0 if name in _MIN_ZERO else 1)
    cap = _MAX.get(name, MNIST_TRAIN_SIZE if name.endswith("_train_size") else None)
    if cap is not None and v > cap:
        raise ValueError(f"{name}: expected an integer <= {cap:,}, got {v:,}")


def check_field(name: str, value) -> None:
    """One field's rule (raises TypeError / ValueError whose message starts with the field's name)."""
    if name == "name":
        if not isinstance(value, str) or not _NAME_RE.match(value):
            raise ValueError(f"name: expected a short name of letters, digits, '_', '.' or '-' (it names the "
                             f"checkpoint folder), got {value!r}")
    elif name in _OPTIONAL_SIZES:
        if value is not None:
            _check_size(name, value)
    elif name in _RATES:
        check_positive_float(value, name)
    elif name in _FRACTIONS:
        check_fraction(value, name)
    elif name in _FLAGS:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected True or False, got {value!r}")
    elif name == "eps_step":
        step = check_eps(value, name)
        n = round(1.0 / step) if step > 0 else 0
        if step == 0 or abs(n * step - 1.0) > 1e-9:
            raise ValueError(f"eps_step: expected a step in (0, 1] that divides 1 into whole steps "
                             f"(0.05, 0.1, 0.25, ...), got {value!r}")
    elif name == "eps_values":
        if value is None:
            return
        eps = check_eps_list(value, name=name)
        if eps[0] != 0.0:
            raise ValueError(f"eps_values: the grid must start at 0 (the clean accuracy), got {eps}")
        rounded = [round(e, 2) for e in eps]
        off = [e for e, r in zip(eps, rounded) if abs(e - r) > 1e-9]
        if off:
            raise ValueError(f"eps_values: the grid is kept to 2 decimals, got {off}")
    elif name in ("autoattack_eps", "restarts_eps", "robust_autoattack_eps") and value == ():
        return                                  # not run (AutoAttack in the smoke profile: Square's 5,000 queries)
    elif name in _EPS_TUPLES:
        eps = check_eps_list(value, name=name)
        if eps[0] <= 0.0:
            raise ValueError(f"{name}: every eps must lie in (0, 1], got {eps}")
    elif name == "robust_attack_arithmetic":
        if value not in ("", "fp32", "fold", "bf16"):
            raise ValueError(f"robust_attack_arithmetic: expected '' (chapter 07's specs as they are), 'fp32', "
                             f"'fold' or 'bf16', got {value!r}")
    elif name == "steps_curve_eps":
        if check_eps(value, name) <= 0.0:
            raise ValueError(f"steps_curve_eps: expected an eps in (0, 1], got {value!r}")
    elif name in _ATTACK_SPECS or name in ("campaign_attacks", "pixeldefend_attacks", "dgan_attacks"):
        from .attack_spec import parse_attack
        specs = [value] if name in _ATTACK_SPECS else value
        if isinstance(specs, (str, bytes)) or not isinstance(specs, (list, tuple)) or not specs:
            raise ValueError(f"{name}: expected a non-empty tuple of attack specs, got {value!r}")
        for sp in specs:
            parse_attack(sp)
    elif name in ("campaign_defenses", "robust_defenses"):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value \
                or not all(isinstance(v, str) and v for v in value) or len(set(value)) != len(value):
            raise ValueError(f"{name}: expected a tuple of distinct defense names, got {value!r}")
    elif name in ("steps_curve", "dgan_attacker"):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name}: expected a non-empty tuple of integers, got {value!r}")
        ints = [check_positive_int(k, f"{name}[{i}]") for i, k in enumerate(value)]
        if name == "steps_curve" and any(b <= a for a, b in zip(ints, ints[1:])):
            raise ValueError(f"steps_curve: expected increasing step counts, got {ints}")
        if name == "dgan_attacker" and len(ints) != 2:
            raise ValueError(f"dgan_attacker: expected (L steps, R restarts), got {value!r}")
    elif name == "hybrid_steps":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"hybrid_steps: expected a non-empty tuple of step counts, got {value!r}")
        steps = [check_positive_int(k, f"hybrid_steps[{i}]") for i, k in enumerate(value)]
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"hybrid_steps: expected increasing, distinct step counts, got {steps}")
    elif name == "robust_study_objectives":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value or \
                any(v not in ("reconstruction", "latent") for v in value):
            raise ValueError(f"robust_study_objectives: expected a tuple out of 'reconstruction', 'latent', got {value!r}")
    elif name == "robust_study_centre":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != 4 or \
                value[3] not in ("reconstruction", "latent"):
            raise ValueError(f"robust_study_centre: expected (train eps, inner steps, clean share, 'reconstruction' "
                             f"or 'latent'), got {value!r}")
        check_fraction(value[0], "robust_study_centre[0] (train eps)")
        check_positive_int(value[1], "robust_study_centre[1] (inner steps)")
        check_fraction(value[2], "robust_study_centre[2] (clean share)")
    elif name == "robust_study_clean":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"robust_study_clean: expected a non-empty tuple of fractions, got {value!r}")
        for i, v in enumerate(value):
            check_fraction(v, f"robust_study_clean[{i}]")
    elif name == "robust_study_inner":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"robust_study_inner: expected a non-empty tuple of step counts, got {value!r}")
        for i, v in enumerate(value):
            check_positive_int(v, f"robust_study_inner[{i}]")
    elif name == "robust_objective":
        if value not in ("reconstruction", "latent"):
            raise ValueError(f"robust_objective: expected 'reconstruction' or 'latent' (the label-free inner "
                             f"objectives), got {value!r}")
    elif name in ("enc_schedule", "robust_schedule"):
        if value not in _SCHEDULES:
            raise ValueError(f"{name}: expected one of {_SCHEDULES}, got {value!r}")
    elif name == "extra":
        if not isinstance(value, dict):
            raise ValueError(f"extra: expected a dict, got {type(value).__name__}")
    else:  # every other field is a size, an epoch count, a batch, a width or a number of steps
        _check_size(name, value)
