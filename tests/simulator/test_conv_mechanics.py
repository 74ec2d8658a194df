"""Conv and max-pool mechanics: every traced frame and every explicit backward grid against simulator.functional.layers."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.functional import layers
from simulator.labs.conv_mechanics import (FILTERS, PHOTOS, apply_filter, conv_backward_explicit, conv_output, conv_trace,
                                      dilate, dot_product_text, format_number, load_photo, max_pool_backward_explicit, max_pool_trace,
                                      output_size, pad_input)
from simulator.core.errors import ShapeError, ValueInputError

GEOMETRIES = [  # (N, F, P, S, C)
    (5, 3, 0, 1, 1), (5, 3, 1, 1, 1), (5, 3, 1, 2, 1), (7, 3, 0, 2, 1), (7, 3, 1, 3, 2), (6, 2, 0, 2, 1),
    (7, 5, 2, 1, 3), (4, 1, 0, 1, 2), (8, 4, 1, 2, 1),
]


def layer(x, w, b, S, P):
    return layers.conv_forward(x[None], w[None], np.array([b]), S, P)


@pytest.mark.parametrize("N, F, P, S, C", GEOMETRIES)
def test_every_frame_sums_to_conv_forward(N, F, P, S, C):
    rng = np.random.default_rng(N * 100 + F * 10 + P + S)
    x = rng.integers(-4, 5, (C, N, N)).astype(float)
    w = rng.integers(-2, 3, (C, F, F)).astype(float)
    out, _ = layer(x, w, 1.5, S, P)
    frames = conv_trace(x, w, 1.5, S, P)
    n = output_size(N, F, P, S)
    assert out.shape == (1, 1, n, n) and len(frames) == n * n
    xp = pad_input(x, P)
    for f in frames:
        i, j = f.out_pos
        assert f.origin == (i * S, j * S) and f.index == i * n + j
        np.testing.assert_array_equal(f.window, xp[:, i * S:i * S + F, j * S:j * S + F])
        np.testing.assert_array_equal(f.products, f.window * w)
        assert f.total == pytest.approx(f.products.sum())
        assert f.value == pytest.approx(out[0, 0, i, j], abs=1e-12)
        assert f.text.endswith(f"= {format_number(f.value)}")
        assert f.text.count("·") == (C * F * F if C * F * F <= 27 else 26)
    np.testing.assert_allclose(conv_output(x, w, 1.5, S, P), out[0, 0], atol=1e-12)


def test_trace_text_and_padding_values():
    x = np.arange(1, 10, dtype=float).reshape(3, 3)
    w = np.array([[0.0, 1.0], [2.0, -1.0]])
    frames = conv_trace(x, w, b=1, stride=1, pad=1)
    assert len(frames) == 16
    assert frames[0].text == "0·0 + 0·1 + 0·2 + 1·(-1) + 1 = 0"      # the corner window sees three padding zeros
    assert frames[5].text == "1·0 + 2·1 + 4·2 + 5·(-1) + 1 = 6"
    assert dot_product_text(np.array([0.5]), np.array([-2.0]), -0.25, -1.25) == "0.5·(-2) + (-0.25) = -1.25"


@pytest.mark.parametrize("N, F, P, S, C", GEOMETRIES)
def test_explicit_backward_equals_conv_backward(N, F, P, S, C):
    rng = np.random.default_rng(N + 7 * F + 13 * P + 31 * S)
    x = rng.standard_normal((C, N, N))
    w = rng.standard_normal((C, F, F))
    out, cache = layer(x, w, 0.3, S, P)
    dout = rng.standard_normal(out.shape[2:])
    dx, dw, db = layers.conv_backward(dout[None, None], cache)
    bk = conv_backward_explicit(x, w, dout, S, P)
    np.testing.assert_allclose(bk.dx, dx[0], atol=1e-12)
    np.testing.assert_allclose(bk.dw, dw[0], atol=1e-12)
    assert bk.db == pytest.approx(db[0])
    np.testing.assert_array_equal(bk.w_flipped[0], w[0][::-1, ::-1])
    assert bk.dout_dilated.shape == ((out.shape[2] - 1) * S + 1,) * 2
    assert bk.dxpad.shape == (C, N + 2 * P, N + 2 * P)


def test_dilate():
    np.testing.assert_array_equal(dilate(np.array([[1.0, 2.0], [3.0, 4.0]]), 2),
                                  [[1, 0, 2], [0, 0, 0], [3, 0, 4]])


@pytest.mark.parametrize("N, size, stride", [(4, 2, 2), (6, 2, 2), (5, 3, 1), (7, 3, 2), (6, 3, 3)])
def test_max_pool_trace_and_routing_equal_layers(N, size, stride):
    rng = np.random.default_rng(N * size + stride)
    x = rng.integers(0, 6, (N, N)).astype(float)                    # small integers: plenty of ties
    out, cache = layers.max_pool_forward(x[None, None], size, stride)
    frames = max_pool_trace(x, size, stride)
    assert [f.value for f in frames] == out.ravel().tolist()
    for f in frames:
        r, c = f.argmax
        assert x[r, c] == f.value
        window = x[f.origin[0]:f.origin[0] + size, f.origin[1]:f.origin[1] + size]
        flat = int(np.argmax(window))                                # first maximum in row-major order
        assert (r - f.origin[0], c - f.origin[1]) == (flat // size, flat % size)
    dout = rng.standard_normal(out.shape[2:])
    ref = layers.max_pool_backward(dout[None, None], cache)[0, 0]
    np.testing.assert_allclose(max_pool_backward_explicit(x, dout, size, stride), ref, atol=1e-12)


@pytest.mark.parametrize("N, F, P, S, expected", [(7, 3, 0, 1, 5), (7, 3, 0, 2, 3), (32, 5, 2, 1, 32),
                                                  (5, 5, 0, 1, 1), (227, 11, 0, 4, 55)])
def test_output_size(N, F, P, S, expected):
    assert output_size(N, F, P, S) == expected


def test_output_size_refusals_explain_the_arithmetic():
    with pytest.raises(ShapeError) as e:
        output_size(7, 3, 0, 3)
    msg = str(e.value)
    assert "(7 - 3 + 2·0)/3 + 1 = 4/3 + 1 = 2.333" in msg and "not an integer" in msg and "remainder 1" in msg
    with pytest.raises(ShapeError, match=r"does not fit.*N \+ 2P = 3 \+ 2·0 = 3"):
        output_size(3, 5, 0, 1)
    with pytest.raises(ShapeError, match="S must be ≥ 1"):
        output_size(5, 3, 0, 0)
    with pytest.raises(ShapeError, match="N must be a whole number"):
        output_size(5.5, 3, 0, 1)
    with pytest.raises(ShapeError, match="not an integer"):
        conv_trace(np.zeros((7, 7)), np.zeros((3, 3)), 0.0, 3, 0)
    with pytest.raises(ShapeError, match="channels"):
        conv_trace(np.zeros((2, 5, 5)), np.zeros((3, 3)))


def test_named_filters_on_real_images():
    assert set(FILTERS) >= {"Vertical edges (Sobel x)", "Horizontal edges (Sobel y)", "Laplacian", "Box blur",
                            "Gaussian blur", "Sharpen", "Identity"}
    for name in PHOTOS:
        photo = load_photo(name, size=120)
        assert max(photo.shape) == 120 and photo.min() >= 0 and photo.max() <= 1 and photo.std() > 0.05
    photo = load_photo("china.jpg", size=60)
    np.testing.assert_allclose(apply_filter(photo, "Identity"), photo, atol=1e-12)
    blur = apply_filter(photo, "Box blur")
    i, j = 20, 30
    assert blur[i, j] == pytest.approx(photo[i - 1:i + 2, j - 1:j + 2].mean())
    # a vertical step edge lights up Sobel x and leaves Sobel y dark
    step = np.zeros((10, 10))
    step[:, 5:] = 1.0
    gx, gy = apply_filter(step, "Vertical edges (Sobel x)"), apply_filter(step, "Horizontal edges (Sobel y)")
    assert gx[5, 4] == 4.0 and gx[5, 5] == 4.0 and gx[5, 2] == 0.0
    assert np.all(gy[1:-1, :] == 0.0)
    with pytest.raises(ValueInputError, match="unknown filter"):
        apply_filter(step, "Emboss")
    with pytest.raises(ValueInputError, match="unknown photo"):
        load_photo("moon.jpg")


def test_without_pillow_the_photos_say_how_to_install_it(monkeypatch):
    import sys
    from simulator.labs.conv_mechanics import load_photo_rgb, resize_channels
    monkeypatch.setitem(sys.modules, "PIL", None)            # `from PIL import Image` now fails as if not installed
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    for call in (lambda: load_photo("china.jpg", size=40), lambda: load_photo_rgb("china.jpg", size=8),
                 lambda: resize_channels(np.ones((3, 6, 6)), 4)):
        with pytest.raises(ValueInputError, match="need scikit-learn and Pillow: pip install scikit-learn pillow"):
            call()
    with pytest.raises(ValueInputError, match="unknown photo"):    # the name is still checked first
        load_photo("moon.jpg")
