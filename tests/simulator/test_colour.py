"""sRGB <-> CIE Lab (simulator.data.colour): round trips, published reference values, the gamma's two pieces,
out-of-gamut clipping and our errors."""
import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.data.colour import (
    RGB_TO_XYZ,
    WHITE_D65,
    in_gamut,
    lab_to_rgb,
    rgb_to_gray_lab,
    rgb_to_lab,
)

# sRGB (8-bit) -> L*a*b* (D65, 2° observer), as published by Bruce Lindbloom's and EasyRGB's calculators (three
# decimals): the primaries, the secondaries, white, black and the middle grey 128.
PUBLISHED = [
    ((255, 255, 255), (100.0, 0.0, 0.0)),
    ((0, 0, 0), (0.0, 0.0, 0.0)),
    ((255, 0, 0), (53.241, 80.092, 67.203)),
    ((0, 255, 0), (87.735, -86.183, 83.179)),
    ((0, 0, 255), (32.297, 79.188, -107.860)),
    ((255, 255, 0), (97.139, -21.554, 94.478)),
    ((0, 255, 255), (91.113, -48.088, -14.131)),
    ((255, 0, 255), (60.324, 98.234, -60.825)),
    ((128, 128, 128), (53.585, 0.0, 0.0)),
]


@pytest.mark.parametrize("rgb8, lab", PUBLISHED)
def test_published_values(rgb8, lab):
    got = rgb_to_lab(np.array(rgb8, float) / 255.0)
    np.testing.assert_allclose(got, lab, atol=2e-3)


def test_white_is_exact_and_white_point_is_d65():
    np.testing.assert_array_equal(rgb_to_lab(np.ones(3)), [100.0, 0.0, 0.0])
    np.testing.assert_array_equal(rgb_to_lab(np.zeros(3)), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(WHITE_D65, [0.95047, 1.0, 1.08883], atol=2e-7)
    # the luminance row of the matrix: Y of the primaries (Rec. 709 luma weights of linear light)
    np.testing.assert_allclose(RGB_TO_XYZ[1], [0.2126729, 0.7151522, 0.0721750])


def test_round_trip_random_colours():
    rgb = np.random.default_rng(0).random((20_000, 3))
    rgb[:100] = np.random.default_rng(1).integers(0, 2, (100, 3))      # corners of the cube too
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert np.abs(back - rgb).max() < 1e-6


def test_round_trip_from_lab_unclipped():
    lab = np.column_stack([np.random.default_rng(2).uniform(0, 100, 5000),
                           np.random.default_rng(3).uniform(-120, 120, (5000, 2))])
    rgb = lab_to_rgb(lab, clip=False)
    ok = in_gamut(lab)
    assert 0 < ok.sum() < len(lab)                   # the sample has colours on both sides of the gamut's edge
    np.testing.assert_allclose(rgb_to_lab(rgb[ok]), lab[ok], atol=1e-6)


def test_shapes_are_kept():
    rgb = np.random.default_rng(4).random((2, 5, 7, 3))
    assert rgb_to_lab(rgb).shape == (2, 5, 7, 3)
    assert lab_to_rgb(rgb_to_lab(rgb)).shape == (2, 5, 7, 3)


def test_greys_have_no_colour_and_lightness_grows():
    v = np.linspace(0, 1, 101)
    lab = rgb_to_lab(np.repeat(v[:, None], 3, axis=1))
    np.testing.assert_allclose(lab[:, 1:], 0.0, atol=1e-9)
    assert np.all(np.diff(lab[:, 0]) > 0)


def test_gamma_pieces_meet_at_the_knee():
    # the sRGB curve is linear up to 0.04045 and a power beyond: L must not jump there (the standard's rounded
    # constants leave a step of about 1e-8 in linear light, 2e-6 in L; a wrong piece would jump by far more)
    c = np.array([0.04045 - 1e-9, 0.04045, 0.04045 + 1e-9])
    L = rgb_to_lab(np.repeat(c[:, None], 3, axis=1))[:, 0]
    assert np.abs(np.diff(L)).max() < 1e-5
    # a dark grey lies on both linear pieces: linear light Y = c / 12.92 below the gamma's knee, and below
    # (6/29)^3 f is linear too, so L = 116 f(Y) - 16 = (29/3)^3 Y (the CIE's kappa, 24389/27)
    y = 0.03 / 12.92
    assert y < (6 / 29) ** 3
    assert rgb_to_lab(np.full(3, 0.03))[0] == pytest.approx(24389 / 27 * y, rel=1e-12)
    # a light grey on both power pieces: Y = ((c + 0.055) / 1.055)^2.4 and L = 116 Y^(1/3) - 16
    y = ((0.6 + 0.055) / 1.055) ** 2.4
    assert rgb_to_lab(np.full(3, 0.6))[0] == pytest.approx(116 * np.cbrt(y) - 16, rel=1e-12)


def test_out_of_gamut_is_clipped_per_channel():
    lab = np.array([[50.0, 120.0, 120.0], [50.0, 0.0, 0.0]])
    raw = lab_to_rgb(lab, clip=False)
    clipped = lab_to_rgb(lab)
    assert raw[0].max() > 1.0 and raw[0].min() < 0.0           # far too saturated for sRGB
    np.testing.assert_array_equal(clipped[0], np.clip(raw[0], 0, 1))
    np.testing.assert_array_equal(clipped[1], raw[1])           # in gamut: untouched
    np.testing.assert_array_equal(in_gamut(lab), [False, True])


def test_gray_keeps_lightness():
    rgb = np.random.default_rng(5).random((50, 3))
    g = rgb_to_gray_lab(rgb)
    np.testing.assert_allclose(g[:, 0], g[:, 1], atol=1e-9)
    np.testing.assert_allclose(g[:, 1], g[:, 2], atol=1e-9)
    np.testing.assert_allclose(rgb_to_lab(g)[:, 0], rgb_to_lab(rgb)[:, 0], atol=1e-6)


@pytest.mark.parametrize("bad, err", [
    (np.zeros((4, 2)), ShapeError),
    (np.float64(0.5), ShapeError),
    (np.array([0.2, np.nan, 0.1]), ValueInputError),
    (np.array([0.2, 1.5, 0.1]), ValueInputError),
    (np.array([255, 0, 0]), ValueInputError),
    (np.array(["a", "b", "c"]), ValueInputError),
])
def test_rgb_errors(bad, err):
    with pytest.raises(err):
        rgb_to_lab(bad)


def test_lab_errors():
    with pytest.raises(ShapeError):
        lab_to_rgb(np.zeros((3, 4)))
    with pytest.raises(ValueInputError):
        lab_to_rgb(np.array([50.0, np.inf, 0.0]))
    with pytest.raises(ValueInputError, match="clip"):
        lab_to_rgb(np.zeros(3), clip="yes")
