"""Multi-channel convolution: K filters, each as deep as the C-channel input, traced number by number; the parameter
count and the output volume; 1x1 convolution as a per-pixel matrix product; the lab's multi-channel model."""
from __future__ import annotations

import re

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import run_job
from simulator.functional import layers
from simulator.labs.conv_lab import (INTEGERS, MIX_WEIGHTS, ONE_BY_ONE_SIDE, ConvLabModel, MultiConvModel,
                                     MultiConvSettings, PHOTO_RGB_SIDE)
from simulator.labs.conv_mechanics import (COLOUR_MIXES, MAX_TRACE_CELLS, PHOTOS, conv1x1_matmul, conv_param_count,
                                           conv_volume_shape, format_number, load_photo_rgb, multi_conv_output,
                                           multi_conv_trace, output_size, pad_input, param_count_text)

GEOMETRIES = [  # (C, K, N, F, P, S)
    (3, 2, 5, 3, 1, 1), (1, 3, 5, 3, 0, 1), (2, 4, 7, 3, 1, 2), (4, 1, 6, 2, 0, 2), (3, 3, 7, 5, 2, 1),
    (2, 2, 4, 1, 0, 1), (3, 4, 8, 4, 1, 2), (4, 3, 9, 3, 0, 3),
]


def volume(C, K, N, F, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(-3, 4, (C, N, N)).astype(float), rng.integers(-2, 3, (K, C, F, F)).astype(float),
            rng.integers(-2, 3, K).astype(float))


@pytest.mark.parametrize("C, K, N, F, P, S", GEOMETRIES)
def test_every_frame_is_a_sum_of_channel_partials_and_equals_conv_forward(C, K, N, F, P, S):
    x, w, b = volume(C, K, N, F, seed=C * 1000 + K * 100 + N * 10 + F + P + S)
    out, _ = layers.conv_forward(x[None], w, b, S, P)
    n = output_size(N, F, P, S)
    assert out.shape == (1, K, n, n)
    frames = multi_conv_trace(x, w, b, S, P)
    assert len(frames) == K * n * n
    xp = pad_input(x, P)
    for t, f in enumerate(frames):
        k, i, j = np.unravel_index(t, (K, n, n))               # filter k first, then row-major in map k
        assert (f.index, f.k, f.out_pos, f.origin) == (t, k, (i, j), (i * S, j * S))
        np.testing.assert_array_equal(f.window, xp[:, i * S:i * S + F, j * S:j * S + F])   # every channel's window
        np.testing.assert_array_equal(f.filt, w[k])
        np.testing.assert_array_equal(f.products, f.window * w[k])
        assert f.partials.shape == (C,)
        for c in range(C):                                    # partial c = window_c · filter_kc
            assert f.partials[c] == pytest.approx(float(np.dot(f.window[c].ravel(), w[k, c].ravel())), abs=1e-12)
            assert f.channel_texts[c].endswith(f"= {format_number(f.partials[c])}")
        assert f.total == pytest.approx(f.partials.sum(), abs=1e-12) and f.bias == b[k]
        assert f.value == pytest.approx(f.total + b[k], abs=1e-12)
        assert f.value == pytest.approx(out[0, k, i, j], abs=1e-12)
        assert f.text.startswith(f"out[{k}, {i}, {j}] = ") and f.text.endswith(f"= {format_number(f.value)}")
    np.testing.assert_allclose(multi_conv_output(x, w, b, S, P), out[0], atol=1e-12)


@pytest.mark.parametrize("C, K, N, F, P, S", GEOMETRIES)
def test_trace_agrees_with_torch_conv2d(C, K, N, F, P, S):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(N * F + 17 * C + K)
    x, w, b = rng.standard_normal((C, N, N)), rng.standard_normal((K, C, F, F)), rng.standard_normal(K)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(w), torch.from_numpy(b),
                                     stride=S, padding=P)[0].numpy()
    frames = multi_conv_trace(x, w, b, S, P)
    np.testing.assert_allclose(np.array([f.value for f in frames]).reshape(ref.shape), ref, rtol=1e-12, atol=1e-12)


def test_a_worked_example_by_hand():
    x = np.array([[[1, 2], [3, 4]], [[0, 1], [1, 0]]], dtype=float)          # C = 2, 2x2
    w = np.array([[[[1, 0], [0, 1]], [[2, 2], [2, 2]]]], dtype=float)        # K = 1, C = 2, F = 2
    (f,) = multi_conv_trace(x, w, [-1.0])
    np.testing.assert_array_equal(f.partials, [1 + 4, 2 * (0 + 1 + 1 + 0)])
    assert (f.total, f.value) == (9.0, 8.0)
    assert f.channel_texts == ("1·1 + 2·0 + 3·0 + 4·1 = 5", "0·2 + 1·2 + 1·2 + 0·2 = 4")
    assert f.text == "out[0, 0, 0] = 5 + 4 + (-1) = 8"


@pytest.mark.parametrize("K, C, F, expected", [(4, 3, 3, 112), (10, 3, 5, 760), (96, 3, 11, 34_944),
                                               (64, 64, 1, 4_160), (1, 1, 1, 2)])
def test_parameter_count(K, C, F, expected):
    # (10, 3, 5): cs231n's 32x32x3 input with ten 5x5 filters, 5·5·3 + 1 = 76 each; (96, 3, 11): AlexNet's conv1
    assert conv_param_count(K, C, F) == expected == K * (C * F * F + 1)
    assert param_count_text(K, C, F) == f"K·C·F·F + K = {K}·{C}·{F}·{F} + {K} = {expected:,} parameters"


@pytest.mark.parametrize("K, C, F", [(4, 3, 3), (7, 2, 5), (16, 8, 1)])
def test_parameter_count_matches_torch(K, C, F):
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv2d(C, K, F)
    assert conv_param_count(K, C, F) == sum(p.numel() for p in conv.parameters())


def test_output_volume_shape():
    assert conv_volume_shape((3, 32, 32), 10, 5, 1, 2) == (10, 32, 32)          # depth = number of filters
    assert conv_volume_shape((3, 227, 227), 96, 11, 4, 0) == (96, 55, 55)
    assert conv_volume_shape((64, 56, 56), 32, 1, 1, 0) == (32, 56, 56)        # 1x1: a depth change only
    assert conv_volume_shape((3, 7, 9), 2, 3, 2, 0) == (2, 3, 4)
    for C, K, N, F, P, S in GEOMETRIES:
        x, w, b = volume(C, K, N, F, seed=1)
        assert conv_volume_shape(x.shape, K, F, S, P) == multi_conv_output(x, w, b, S, P).shape
    with pytest.raises(ShapeError, match="not an integer.*Try stride S = 1"):
        conv_volume_shape((3, 6, 6), 2, 3, 2, 1, pads=range(0, 3), strides=range(1, 4))
    with pytest.raises(ShapeError, match=r"\(C, H, W\)"):
        conv_volume_shape((6, 6), 2, 3)


def test_conv1x1_is_a_per_pixel_matrix_product_exactly():
    rng = np.random.default_rng(11)
    C, K, H, W = 5, 3, 6, 7
    x = rng.integers(-8, 9, (C, H, W)).astype(float)          # integers: every sum is exact, whatever the order
    w = rng.integers(-5, 6, (K, C, 1, 1)).astype(float)
    b = rng.integers(-3, 4, K).astype(float)
    conv = multi_conv_output(x, w, b)
    mm = conv1x1_matmul(x, w, b)
    np.testing.assert_array_equal(conv, mm)
    np.testing.assert_array_equal(mm, np.einsum("kc,chw->khw", w[:, :, 0, 0], x) + b[:, None, None])
    Wm = w[:, :, 0, 0]
    for i in range(H):
        for j in range(W):
            np.testing.assert_array_equal(conv[:, i, j], Wm @ x[:, i, j] + b)   # W (K×C) times the pixel's channels
    frames = multi_conv_trace(x, w, b)
    np.testing.assert_array_equal(np.array([f.value for f in frames]).reshape(K, H, W), mm)
    # each frame's partials are the pixel's channels times one row of W
    f = frames[2 * H * W + 3 * W + 4]
    assert (f.k, f.out_pos) == (2, (3, 4))
    np.testing.assert_array_equal(f.partials, Wm[2] * x[:, 3, 4])
    # real-valued: equal to rounding
    xr, wr, br = rng.standard_normal((C, H, W)), rng.standard_normal((K, C)), rng.standard_normal(K)
    np.testing.assert_allclose(multi_conv_output(xr, wr[:, :, None, None], br), conv1x1_matmul(xr, wr, br),
                               rtol=1e-13, atol=1e-13)
    with pytest.raises(ShapeError, match="1×1"):
        conv1x1_matmul(x, np.zeros((K, C, 3, 3)), b)


def test_refusals_name_the_depth_rule_and_the_shapes():
    x = np.zeros((3, 5, 5))
    with pytest.raises(ShapeError, match="full depth of its input, so w must be \\(2, 3, F, F\\)"):
        multi_conv_trace(x, np.zeros((2, 1, 3, 3)), np.zeros(2))
    with pytest.raises(ShapeError, match="one bias per filter, shape \\(2,\\)"):
        multi_conv_trace(x, np.zeros((2, 3, 3, 3)), np.zeros(3))
    with pytest.raises(ShapeError, match="\\(K, C, F, F\\)"):
        multi_conv_trace(x, np.zeros((3, 3, 3)), np.zeros(1))
    with pytest.raises(ValueInputError, match="NaN"):
        multi_conv_trace(x, np.full((1, 3, 3, 3), np.nan), np.zeros(1))
    with pytest.raises(ShapeError, match="too many to trace"):
        multi_conv_trace(np.zeros((1, 100, 100)), np.zeros((4, 1, 1, 1)), np.zeros(4))
    with pytest.raises(ShapeError, match="not an integer"):
        multi_conv_trace(np.zeros((1, 7, 7)), np.zeros((1, 1, 3, 3)), np.zeros(1), 3, 0)


def test_photo_channels():
    rgb = load_photo_rgb(PHOTOS[0], 16)
    assert rgb.shape == (3, 16, 16) and rgb.min() >= 0 and rgb.max() <= 1
    assert np.abs(rgb[0] - rgb[2]).mean() > 0.02                 # a colour photo: R and B differ


# ================================================================================================== the lab model

def test_model_frames_maps_and_animation():
    m = MultiConvModel()
    parts = []
    m.changed.connect(parts.append)
    s = m.settings
    assert (s.source, s.c, s.k, s.n, s.f, s.stride, s.pad) == (INTEGERS, 3, 2, 5, 3, 1, 1)
    assert m.x.shape == (3, 5, 5) and m.w.shape == (2, 3, 3, 3) and m.b.shape == (2,)
    assert len(m.frames) == 2 * 5 * 5 and m.frame_index == -1 and m.out_shape == (2, 5, 5)
    assert m.param_count() == 56 and m.param_count_text().endswith("= 56 parameters")
    assert "output   K×H'×W' = 2×5×5" in m.shape_text()
    out, shown = m.output_maps()
    ref, _ = layers.conv_forward(m.x[None], m.w, m.b, 1, 1)
    np.testing.assert_allclose(out, ref[0], atol=1e-12)
    assert not shown.any()
    for _ in range(27):
        assert m.step()
    assert m.frame.k == 1 and m.frame.out_pos == (0, 1) and parts == ["frame"] * 27
    out, shown = m.output_maps()
    assert shown[0].all() and shown[1].sum() == 2 and shown[1, 0, :2].all()
    m.show(10_000)
    assert m.frame_index == 49 and not m.step()
    m.rewind()
    assert m.frame is None


def test_model_changing_k_and_c_keeps_what_still_fits():
    m = MultiConvModel()
    w0, b0, x0 = m.w.copy(), m.b.copy(), m.x.copy()
    m.set_settings(m.settings.replace(k=4))
    assert m.w.shape == (4, 3, 3, 3) and len(m.frames) == 4 * 25
    np.testing.assert_array_equal(m.w[:2], w0)
    np.testing.assert_array_equal(m.b[:2], b0)
    out, _ = m.output_maps()
    np.testing.assert_allclose(out, layers.conv_forward(m.x[None], m.w, m.b, 1, 1)[0][0], atol=1e-12)
    m.set_settings(m.settings.replace(k=1))
    np.testing.assert_array_equal(m.w, w0[:1])
    m.set_settings(m.settings.replace(c=4))                   # deeper input: every filter gets deeper too
    assert m.x.shape == (4, 5, 5) and m.w.shape == (1, 4, 3, 3)
    np.testing.assert_array_equal(m.x[:3], x0)
    assert m.param_count() == 1 * 4 * 9 + 1


def test_model_geometry_refusal_offers_reachable_fixes_and_recovers():
    m = MultiConvModel()
    m.set_settings(m.settings.replace(n=6, stride=2))          # (6 - 3 + 2)/2 + 1 = 3.5
    assert m.frames == [] and "not an integer" in m.error and m.output_maps()[0].shape == (2, 0, 0)
    assert "Cannot build this layer" in m.shape_text()
    pads = re.search(r"padding P = ([\d, or]+) \(keeping", m.error)
    strides = re.search(r"stride S = ([\d, or]+) \(keeping", m.error)
    for p in (re.findall(r"\d+", pads.group(1)) if pads else []):
        assert 0 <= int(p) <= 2 and output_size(6, 3, int(p), 2) >= 1
    suggested = [int(v) for v in re.findall(r"\d+", strides.group(1))]
    assert suggested and all(1 <= v <= 3 and output_size(6, 3, 1, v) >= 1 for v in suggested)
    m.set_settings(m.settings.replace(stride=suggested[0]))
    assert m.error == "" and len(m.frames) == 2 * output_size(6, 3, 1, suggested[0]) ** 2


def test_settings_refuse_bad_combinations_with_a_fix():
    with pytest.raises(ValueInputError, match="a photo has 3 channels .*set Channels C = 3"):
        MultiConvSettings(source=f"photo: {PHOTOS[0]}", c=2)
    with pytest.raises(ValueInputError, match="need Filter F×F = 1 and Channels C = 3"):
        MultiConvSettings(source=f"photo: {PHOTOS[0]}", c=3, f=3, weights=MIX_WEIGHTS)
    with pytest.raises(ValueInputError, match="Filters K must be ≤ 4"):
        MultiConvSettings(k=5)
    with pytest.raises(ValueInputError, match="Input H×W must be ≥ 3"):
        MultiConvSettings(n=2)
    m = MultiConvModel()
    with pytest.raises(ValueInputError):
        m.set_settings({"k": 3})
    assert m.settings == MultiConvSettings()


def test_one_by_one_colour_mixing_on_a_photo():
    m = MultiConvModel()
    s = m.one_by_one_settings().replace(n=12)
    m.set_settings(s)
    assert m.frames == [] and "still loading" in m.error          # photos come from the prepare job
    m.set_photos({name: load_photo_rgb(name, PHOTO_RGB_SIDE) for name in PHOTOS})
    assert m.error == "" and m.x.shape == (3, 12, 12) and m.channel_names() == ("R", "G", "B")
    assert m.map_names() == tuple(COLOUR_MIXES) and m.param_count() == 4 * 3 + 4
    W = m.mix_matrix()
    np.testing.assert_array_equal(W, [v[0] for v in COLOUR_MIXES.values()])
    out, _ = m.output_maps()
    np.testing.assert_array_equal(out, conv1x1_matmul(m.x, W, m.b))
    R, G, B = m.x
    np.testing.assert_allclose(out[0], 0.299 * R + 0.587 * G + 0.114 * B, atol=1e-12)   # grey
    np.testing.assert_allclose(out[1], R - G, atol=1e-12)
    np.testing.assert_allclose(out[3], 1 - (R + G + B) / 3, atol=1e-12)                # negative: the bias is 1
    assert len(m.frames) == 4 * 12 * 12
    before = m.x.copy()
    m.random_input()                                                # a photo stays the photo
    np.testing.assert_array_equal(m.x, before)


def test_conv_lab_model_hands_the_photos_to_the_multichannel_part():
    m = ConvLabModel()
    m.multi.set_settings(m.multi.one_by_one_settings())
    assert "still loading" in m.multi.error
    parts = []
    m.multi.changed.connect(parts.append)
    m.set_prepared(run_job(m.prepare()))
    n = ONE_BY_ONE_SIDE
    assert parts == ["layer"] and m.multi.error == "" and m.multi.x.shape == (3, n, n)
    assert set(m.multi.photos) == set(PHOTOS) and m.multi.photos[PHOTOS[0]].shape == (3, PHOTO_RGB_SIDE,
                                                                                      PHOTO_RGB_SIDE)


def test_the_one_by_one_demonstration_is_large_enough_to_see_the_photo():
    m = MultiConvModel()
    assert m.settings.n == 5                                        # the integers' readable default
    s = m.one_by_one_settings()
    assert 24 <= s.n == ONE_BY_ONE_SIDE <= 32 and (s.f, s.k, s.c, s.pad, s.stride) == (1, 4, 3, 0, 1)
    assert s.k * s.n * s.n <= MAX_TRACE_CELLS                       # traceable number by number
    m.set_photos({name: load_photo_rgb(name, PHOTO_RGB_SIDE) for name in PHOTOS})
    m.set_settings(s)
    assert m.error == "" and m.x.shape == (3, s.n, s.n) and len(m.frames) == 4 * s.n * s.n
    # the photo, not a handful of blotches: neighbouring pixels agree far more than at the default 5×5
    grey, _ = m.output_maps()
    g = grey[0]
    assert np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1] > 0.8
