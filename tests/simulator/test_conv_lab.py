"""The Convolution lab's model and the output-size hint: only reachable fixes, refusals that keep the state."""
from __future__ import annotations

import re

import numpy as np
import pytest

from simulator.core.errors import ShapeError, StudioError, ValueInputError
from simulator.core.jobs import run_job
from simulator.functional import layers
from simulator.labs.conv_lab import ConvLabModel, FilterSettings, LayerSettings, PoolSettings
from simulator.labs.conv_mechanics import (conv_trace, geometry_fixes, max_pool_trace, output_size, pad_input)


def suggested(message: str) -> tuple[list[int], list[int]]:
    pads = re.search(r"padding P = ([\d, or]+) \(keeping", message)
    strides = re.search(r"stride S = ([\d, or]+) \(keeping", message)
    nums = lambda m: [int(v) for v in re.findall(r"\d+", m.group(1))] if m else []
    return nums(pads), nums(strides)


@pytest.mark.parametrize("N", range(2, 10))
@pytest.mark.parametrize("F", range(1, 8))
@pytest.mark.parametrize("S", range(1, 5))
@pytest.mark.parametrize("P", range(0, 4))
def test_every_suggested_padding_or_stride_really_works(N, F, P, S):
    pads, strides = range(0, 4), range(1, 5)          # the lab's controls
    try:
        output_size(N, F, P, S, pads=pads, strides=strides)
        return
    except ShapeError as exc:
        message = str(exc)
    sp, ss = suggested(message)
    assert (sp, ss) == tuple(geometry_fixes(N, F, P, S, pads, strides))
    for p in sp:                                      # changing only the padding, within the control's range
        assert p in pads and output_size(N, F, p, S) >= 1
    for s in ss:                                      # changing only the stride
        assert s in strides and output_size(N, F, P, s) >= 1
    # nothing reachable is left out
    assert set(sp) == {p for p in pads if p != P and (N - F + 2 * p) >= 0 and (N - F + 2 * p) % S == 0}


def test_the_old_unreachable_hint_is_gone():
    # 6x6, F 3, P 1, S 2: N - F + 2P = 5. The old hint said "e.g. 4 or 6", but 2P is even: no padding gives an even
    # span. The hint now says so, and offers the stride that works.
    with pytest.raises(ShapeError) as e:
        output_size(6, 3, 1, 2, pads=range(0, 4), strides=range(1, 5))
    msg = str(e.value)
    assert "e.g. 4 or 6" not in msg
    assert "Try stride S = 1 (keeping P = 1)" in msg and "padding P =" not in msg
    assert "N − F = 3 is odd" in msg
    with pytest.raises(ShapeError, match=r"Try padding P = 1 \(keeping S = 3\), or stride S = 1, 2 or 4 \(keeping P = 0\)"):
        output_size(7, 3, 0, 3, pads=range(0, 4), strides=range(1, 5))


@pytest.mark.parametrize("kw, match", [(dict(pad=1e20), "P = 1e\\+20 is too large for a padding"),
                                       (dict(pad=10**20), "P = 1e\\+20 is too large"),
                                       (dict(stride=1e20), "S = 1e\\+20 is too large for a stride"),
                                       (dict(stride=-1), "S must be ≥ 1"),
                                       (dict(pad=1.5), "P must be a whole number")])
def test_huge_or_bad_pad_and_stride_are_refused_with_a_readable_message(kw, match):
    with pytest.raises(ShapeError, match=match):
        conv_trace(np.zeros((5, 5)), np.zeros((3, 3)), 0.0, **kw)


def test_pool_and_padding_refuse_huge_values_too():
    with pytest.raises(ShapeError, match="pool stride = 1e\\+20 is too large"):
        max_pool_trace(np.zeros((4, 4)), 2, 1e20)
    with pytest.raises(ShapeError, match="pool size = 9 is too large for this grid"):
        max_pool_trace(np.zeros((4, 4)), 9, 1)
    with pytest.raises(ShapeError, match="P = 1e\\+20 is too large"):
        pad_input(np.zeros((3, 3)), 1e20)
    with pytest.raises(ValueInputError, match="bias must be a finite number"):
        conv_trace(np.zeros((5, 5)), np.zeros((3, 3)), float("nan"))
    with pytest.raises(ShapeError, match="too many to trace"):
        conv_trace(np.zeros((200, 200)), np.zeros((1, 1)))


def test_model_layer_trace_and_refusal_keep_the_state():
    m = ConvLabModel()
    parts = []
    m.changed.connect(parts.append)
    assert len(m.frames) == 25 and m.frame_index == -1 and m.dout.shape == (5, 5)
    m.set_layer(m.layer.replace(stride=2))                  # (5 - 3 + 2)/2 + 1 = 3
    assert len(m.frames) == 9 and "= 3   → output 3×3" in m.size_text() and parts == ["layer"]
    while m.step():
        pass
    out, shown = m.output_grid()
    ref, _ = layers.conv_forward(m.x[None, None], m.w[None, None], np.array([m.layer.bias]), 2, 1)
    np.testing.assert_allclose(out, ref[0, 0]) and shown.all()
    m.set_layer(m.layer.replace(n=6))                       # 5/2 + 1: refused, with a reachable fix
    assert m.frames == [] and m.backward is None and "Try stride S = 1 (keeping P = 1)" in m.size_text()
    with pytest.raises(StudioError):
        m.set_layer(m.layer.replace(pad=1e20))              # a Settings refusal: nothing changes
    assert m.layer.n == 6 and m.layer.pad == 1
    with pytest.raises(ValueInputError, match="row must be ≤ 5"):
        m.edit("x", 6, 0, 1.0)


def test_model_pool_backward_and_prepared_filters():
    m = ConvLabModel()
    m.set_pool(PoolSettings(n=6, size=3, stride=3))
    out, cache = layers.max_pool_forward(m.pool_x[None, None], 3, 3)
    np.testing.assert_array_equal(m.pool_out, out[0, 0])
    np.testing.assert_allclose(m.pool_dx, layers.max_pool_backward(m.pool_dout[None, None], cache)[0, 0])
    m.set_pool(PoolSettings(n=4, size=3, stride=2))
    assert m.pool_out.size == 0 and "not an integer" in m.pool_error
    assert m.current_image() is None and m.library_check() is None      # not prepared: no kernels are called
    m.set_prepared(run_job(m.prepare()))
    assert m.ready and m.library_check() < 1e-9
    m.set_filter(FilterSettings(filter="Identity", image="digit (8x8)", digit=5))
    np.testing.assert_allclose(m.filtered, m.current_image(), atol=1e-12)
    assert m.current_image().shape == (8, 8)


def test_layer_settings_declare_the_ranges_the_hint_uses():
    s = LayerSettings()
    assert (s.n, s.f, s.stride, s.pad) == (5, 3, 1, 1)
    with pytest.raises(ValueInputError, match="Padding P must be ≤ 3"):
        LayerSettings(pad=4)
