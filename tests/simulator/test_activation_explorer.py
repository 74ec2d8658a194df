"""The activation explorer: f and f' from the networks' own layer functions agree with closed forms, sigmoid's slope
is at most 1/4, saturation is where the slope vanishes, and all-positive inputs make SGD steps share a sign."""
import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.labs.activation_explorer import SATURATION, curves, zigzag
from simulator.nn.layers import ACTIVATIONS


def test_closed_forms():
    s = curves("sigmoid")
    sig = 1 / (1 + np.exp(-s.x))
    np.testing.assert_allclose(s.f, sig, rtol=1e-12)
    np.testing.assert_allclose(s.df, sig * (1 - sig), rtol=1e-10, atol=1e-15)
    assert s.max_slope == pytest.approx(0.25) and s.argmax_slope == pytest.approx(0.0, abs=1e-9)
    t = curves("tanh")
    np.testing.assert_allclose(t.df, 1 - np.tanh(t.x) ** 2, rtol=1e-10, atol=1e-15)
    assert t.max_slope == pytest.approx(1.0) and t.zero_centred and not s.zero_centred
    r = curves("relu")
    assert np.all(r.df[r.x < 0] == 0) and np.all(r.df[r.x > 0] == 1)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_matches_its_numerical_derivative(name):
    c = curves(name, -4, 4, 801)
    num = np.gradient(c.f, c.x)
    smooth = np.abs(c.x) > 0.05                      # away from ReLU-like kinks at 0
    np.testing.assert_allclose(c.df[smooth][1:-1], num[smooth][1:-1], atol=2e-3)
    np.testing.assert_array_equal(c.saturated, np.abs(c.df) < SATURATION)


def test_sigmoid_saturates_in_both_tails_and_says_so():
    s = curves("sigmoid")
    assert s.saturated[0] and s.saturated[-1] and not s.saturated[len(s.x) // 2]
    assert "at most 0.25" in s.note and "not zero-centred" in s.note


def test_positive_inputs_make_every_step_share_a_sign():
    pos, cen = zigzag(centred=False), zigzag(centred=True)
    assert pos.same_sign == 1.0 and cen.same_sign < 0.8
    target = np.array([1.0, -1.0])
    assert np.linalg.norm(cen.path[-1] - target) < np.linalg.norm(pos.path[-1] - target)
    with pytest.raises(ValueInputError):
        curves("swish")


def test_a_constant_init_never_breaks_symmetry():
    from simulator.labs.activation_explorer import symmetry
    s = symmetry(hidden=6, steps=60)
    assert s.constant_spread.max() == 0.0                    # exactly: every unit gets the same gradient
    assert np.all(s.constant_w == s.constant_w[0])           # the rows (units) are identical after training
    assert s.random_spread[-1] > 0.1 and not np.allclose(s.random_w, s.random_w[0])
    assert s.random_loss < s.constant_loss
