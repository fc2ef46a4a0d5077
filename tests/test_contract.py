"""The input contract of egan_lib._validate (its module docstring), one class of input at a time:
what is accepted (and converted), what is refused, with which exception and which words."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from egan_lib import _validate as V
from egan_lib import attacks, training
from egan_lib.config import get_profile
from egan_lib.models import Classifier, Discriminator, Generator

FLOATS = [torch.float64, torch.float16, torch.bfloat16]


def _images(n=4, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g).to(dtype)


# ---------------------------------------------------------------------------- images: dtypes
@pytest.mark.parametrize("dtype", FLOATS)
def test_any_floating_dtype_is_accepted_and_returned_as_float32(dtype):
    x = _images(dtype=dtype)
    out = V.check_images(x)
    assert out.dtype == torch.float32 and out.shape == x.shape and out.device == x.device
    assert torch.equal(out, x.float())                       # the values as given, only widened
    assert x.dtype == dtype                                  # the input is left alone


def test_float32_is_returned_as_it_is_without_a_copy_and_need_not_be_contiguous():
    x = _images()
    assert V.check_images(x) is x
    strided = torch.rand(4, 1, 28, 56)[..., ::2]             # a non-contiguous view
    assert not strided.is_contiguous() and V.check_images(strided) is strided
    t = _images(dtype=torch.float64).transpose(2, 3)
    assert torch.equal(V.check_images(t), t.float())


def test_the_conversion_keeps_autograd():
    x = _images(dtype=torch.float64).requires_grad_(True)
    V.check_images(x).sum().backward()
    assert x.grad is not None and torch.all(x.grad == 1)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.int32, torch.int16, torch.int8, torch.bool])
def test_integer_and_bool_images_are_refused_pointing_to_to_float(dtype):
    x = (_images() * (255 if dtype != torch.bool else 1)).to(dtype)
    with pytest.raises(TypeError, match=rf"got dtype {dtype}.*egan_lib\.data\.to_float"):
        V.check_images(x)


def test_complex_arrays_and_lists_are_refused():
    with pytest.raises(TypeError, match="real floating-point"):
        V.check_images(_images().to(torch.complex64))
    with pytest.raises(TypeError, match="got ndarray"):
        V.check_images(np.random.rand(4, 1, 28, 28))
    with pytest.raises(TypeError, match="got list"):
        V.check_images([[0.0]])


# ---------------------------------------------------------------------------- images: values and shapes
@pytest.mark.parametrize("dtype", [torch.float32, *FLOATS])
@pytest.mark.parametrize("value, match", [(float("nan"), "NaN or inf"), (float("inf"), "NaN or inf"),
                                          (-float("inf"), "NaN or inf"), (1.5, r"must lie in \[0, 1\]"),
                                          (-0.25, r"must lie in \[0, 1\]")])
def test_nan_inf_and_pixels_outside_0_1_are_refused_in_every_dtype(dtype, value, match):
    x = _images(dtype=dtype)
    x[1, 0, 3, 4] = value
    with pytest.raises(ValueError, match=match):
        V.check_images(x)


def test_range_is_checked_before_the_conversion():
    """A float64 value just above 1 (it would round to 1.0 in float32) is still refused."""
    x = _images(dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0 + 1e-12
    assert float(x[0, 0, 0, 0].float()) == 1.0
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        V.check_images(x)


@pytest.mark.parametrize("shape, match", [((0, 1, 28, 28), r"empty batch \(N = 0\)"),
                                          ((4, 28, 28), r"expected shape \(N, 1, 28, 28\), got \(4, 28, 28\)"),
                                          ((4, 3, 28, 28), r"got \(4, 3, 28, 28\)"),
                                          ((4, 1, 32, 32), r"got \(4, 1, 32, 32\)"),
                                          ((1, 1, 1, 28, 28), r"got \(1, 1, 1, 28, 28\)")])
def test_wrong_shapes_and_empty_batches_are_refused(shape, match):
    with pytest.raises(ValueError, match=match):
        V.check_images(torch.rand(shape, dtype=torch.float64))
    with pytest.raises(ValueError, match="images: "):
        V.check_images(torch.rand(shape), name="images")     # errors name the argument


# ---------------------------------------------------------------------------- images: the public functions
_C = Classifier().eval()
_G, _D = Generator(width=4), Discriminator(width=4)


def _y(n=4):
    return torch.arange(n) % 10


ATTACK_FUNCTIONS = {
    "attacks.predict": lambda x: attacks.predict(_C, x),
    "attacks.gradient_sign": lambda x: attacks.gradient_sign(_C, x, _y()),
    "attacks.fgsm": lambda x: attacks.fgsm(_C, x, _y(), 0.1),
    "attacks.fgsm_grid": lambda x: attacks.fgsm_grid(_C, x, _y(), [0.0, 0.1])[0.1],
    "attacks.accuracy": lambda x: attacks.accuracy(_C, x, _y()),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fn", list(ATTACK_FUNCTIONS))
def test_attacks_compute_in_float32_whatever_the_float_dtype(fn, dtype):
    """float64 (numpy's default) used to crash inside torch; float16 used to weaken FGSM (its gradient
    underflows). Now the result is the float32 result of the same values."""
    x = _images(dtype=dtype)
    got = ATTACK_FUNCTIONS[fn](x)
    want = ATTACK_FUNCTIONS[fn](x.float())
    if isinstance(got, torch.Tensor):
        assert got.dtype == want.dtype and torch.equal(got, want)
    else:
        assert got == want


TRAINERS = {
    "training.train_gan": lambda x: training.train_gan(_G, _D, x, epochs=1, batch_size=2, progress=False),
    "training.train_classifier": lambda x: training.train_classifier(Classifier(), x, _y(), epochs=1, batch_size=2,
                                                                     progress=False),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fn", list(TRAINERS))
def test_trainers_accept_any_float_dtype(fn, dtype):
    TRAINERS[fn](_images(dtype=dtype))


# ---------------------------------------------------------------------------- labels
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8])
def test_integer_labels_are_accepted_as_int64(dtype):
    out = V.check_labels(torch.arange(4, dtype=dtype), n=4)
    assert out.dtype == torch.int64 and out.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("y, exc, match", [
    (torch.zeros(4), TypeError, r"expected integer labels \(int64\), got dtype torch.float32"),
    (torch.zeros(4, dtype=torch.bool), TypeError, "got dtype torch.bool"),
    ([0, 1, 2, 3], TypeError, "expected a torch.Tensor of int64 labels, got list"),
    (torch.zeros(4, 1, dtype=torch.long), ValueError, r"expected shape \(N,\), got \(4, 1\)"),
    (torch.zeros(0, dtype=torch.long), ValueError, "empty batch"),
    (torch.zeros(3, dtype=torch.long), ValueError, r"expected 4 labels \(one per image\), got 3"),
    (torch.tensor([0, 1, 2, 10]), ValueError, r"labels must lie in \[0, 9\], got min 0 and max 10"),
    (torch.tensor([0, -1, 2, 3]), ValueError, r"got min -1"),
])
def test_bad_labels_are_refused(y, exc, match):
    with pytest.raises(exc, match=match):
        V.check_labels(y, n=4)


# ---------------------------------------------------------------------------- eps and eps lists
@pytest.mark.parametrize("eps, exc, match", [
    (-0.1, ValueError, "must be >= 0"), (1.5, ValueError, r"must be <= 1.0 for images in \[0, 1\]"),
    (math.nan, ValueError, "finite"), (math.inf, ValueError, "finite"),
    ("0.1", TypeError, "got str"), (True, TypeError, "got bool"), (torch.tensor(0.1), TypeError, "got Tensor"),
])
def test_bad_eps_is_refused(eps, exc, match):
    with pytest.raises(exc, match=match):
        V.check_eps(eps)


def test_eps_is_returned_as_a_float():
    assert V.check_eps(np.float32(0.25)) == 0.25 and type(V.check_eps(1)) is float and V.check_eps(0) == 0.0


@pytest.mark.parametrize("values", [[0.0, 0.1, 0.3], (0, 0.5, 1), np.array([0.0, 0.2]), torch.tensor([0.0, 0.5]),
                                    range(0, 1)])
def test_good_eps_lists_are_returned_as_lists_of_floats(values):
    out = V.check_eps_list(values)
    assert isinstance(out, list) and all(type(e) is float for e in out) and out == sorted(out)


@pytest.mark.parametrize("values, exc, match", [
    ([], ValueError, "empty list"),
    ((), ValueError, "empty list"),
    (0.1, ValueError, "expected a non-empty list of eps, got 0.1"),
    ("0.1", ValueError, "expected a non-empty list of eps"),
    (None, ValueError, "expected a non-empty list of eps"),
    ({0.1, 0.2}, ValueError, "expected a non-empty list of eps"),            # a set has no order
    (np.zeros((2, 2)), ValueError, r"an array of shape \(2, 2\)"),
    ([0.0, 0.1, 0.1], ValueError, r"duplicate eps 0.1 \(positions 1 and 2\)"),
    ([0.3, 0.1], ValueError, "expected eps in increasing order"),           # refused, never reordered
    ([0.0, 1.5], ValueError, r"eps_values\[1\]: must be <= 1.0"),
    ([0.0, -0.1], ValueError, r"eps_values\[1\]: must be >= 0"),
    ([0.0, math.nan], ValueError, r"eps_values\[1\]: expected a finite number"),
    ([0.0, "0.1"], TypeError, r"eps_values\[1\]: expected a real number"),
])
def test_bad_eps_lists_are_refused(values, exc, match):
    with pytest.raises(exc, match=match):
        V.check_eps_list(values)


def test_eps_list_order_and_duplicates_can_be_allowed():
    assert V.check_eps_list([0.3, 0.1], sorted_unique=False) == [0.3, 0.1]
    with pytest.raises(ValueError, match="duplicate"):
        V.check_eps_list([0.3, 0.1, 0.3], sorted_unique=False)            # still unique by default
    assert V.check_eps_list([0.3, 0.1, 0.3], sorted_unique=False, unique=False) == [0.3, 0.1, 0.3]
    with pytest.raises(ValueError, match=r"steps\[0\]"):
        V.check_eps_list([2.0], name="steps")
    assert V.check_eps_list([2.0], upper=None) == [2.0]


# ---------------------------------------------------------------------------- seeds, sizes, fractions, objects
@pytest.mark.parametrize("seed", [0, 1, 2 ** 32, 2 ** 64 - 1, np.int64(5), np.uint8(3)])
def test_good_seeds(seed):
    assert V.check_seed(seed) == int(seed) and type(V.check_seed(seed)) is int


@pytest.mark.parametrize("seed", [-1, 1.5, 1.0, "0", None, True, False, 2 ** 64, np.float64(1)])
def test_bad_seeds_are_refused_with_value_error(seed):
    with pytest.raises(ValueError, match="seed: expected a non-negative integer"):
        V.check_seed(seed)


def test_positive_ints():
    assert V.check_positive_int(np.int32(3), "n") == 3
    assert V.check_positive_int(0, "shift", minimum=0) == 0
    with pytest.raises(ValueError, match="n: expected an integer >= 1, got 0"):
        V.check_positive_int(0, "n")
    for bad in (2.5, "3", True, None):
        with pytest.raises(TypeError, match="n: expected an integer >= 1"):
            V.check_positive_int(bad, "n")


def test_fractions():
    assert V.check_fraction(0, "momentum") == 0.0 and V.check_fraction(1, "momentum") == 1.0
    for bad in (-0.01, 1.01, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"momentum: expected a number in \[0, 1\]"):
            V.check_fraction(bad, "momentum")
    for bad in ("0.5", True, None):
        with pytest.raises(TypeError, match=r"momentum: expected a number in \[0, 1\]"):
            V.check_fraction(bad, "momentum")


def test_positive_floats():
    assert V.check_positive_float(1, "lr") == 1.0
    assert V.check_positive_float(0, "t", allow_zero=True) == 0.0
    for bad in (0, -1e-3, math.nan, math.inf):
        with pytest.raises(ValueError, match="lr: expected a finite number > 0"):
            V.check_positive_float(bad, "lr")
    with pytest.raises(TypeError, match="lr: expected a positive number, got bool"):
        V.check_positive_float(True, "lr")


def test_modules_and_callables():
    m = torch.nn.Linear(1, 1)
    assert V.check_module(m, "model") is m
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module, got function"):
        V.check_module(lambda x: x, "model")
    f = lambda x: x  # noqa: E731
    assert V.check_callable(f, "fn") is f and V.check_callable(m, "fn") is m
    with pytest.raises(TypeError, match=r"fn: expected a callable \(an nn.Module or a function x -> outputs\), got int"):
        V.check_callable(3, "fn")
    with pytest.raises(TypeError, match="train: expected a trainer, got NoneType"):
        V.check_callable(None, "train", "a trainer")


# ---------------------------------------------------------------------------- devices and profiles
def test_devices_are_checked_by_config_device():
    from egan_lib.config import device
    assert device("cpu").type == "cpu"
    for bad in ("tpu", "gpu0", ""):
        with pytest.raises(ValueError, match="device"):
            device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"'cuda' was asked for"):
            device("cuda")


def test_profile_fields_are_checked():
    with pytest.raises(ValueError, match=r"field eps_values: expected eps in increasing order, got \[0.5, 0.1\]"):
        get_profile("cpu", eps_values=(0.5, 0.1))
    with pytest.raises(ValueError, match=r"field n_test: expected an integer >= 1, got -5"):
        get_profile("cpu", n_test=-5)
    for name in ("smoke", "cpu", "paper"):
        assert get_profile(name).validate().name == name
