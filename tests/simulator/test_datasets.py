"""Data sets: toy 2-D sets (shapes, balance, seeds), splitting, standardisation statistics, digits, augmentation."""
from __future__ import annotations

import inspect
import sys
import threading
import time

import numpy as np
import pytest

from simulator.data import datasets as D
from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import params_of


@pytest.mark.parametrize("name, kwargs, k", [("spiral", {"classes": 4}, 4), ("circles", {}, 2), ("xor", {}, 2),
                                              ("moons", {}, 2), ("blobs", {"classes": 5}, 5)])
def test_toy_sets_shapes_balance_and_seeds(name, kwargs, k):
    X, y = D.make_toy(name, n=301, seed=3, **kwargs)
    assert X.shape == (301, 2) and X.dtype == np.float64 and y.shape == (301,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=k)
    assert len(counts) == k and counts.max() - counts.min() <= 1 and counts.sum() == 301
    X2, y2 = D.make_toy(name, n=301, seed=3, **kwargs)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    X3, _ = D.make_toy(name, n=301, seed=4, **kwargs)
    assert not np.array_equal(X, X3)
    assert np.all(np.isfinite(X))


def test_toy_set_geometry():
    X, y = D.spiral(300, 3, noise=0.0, seed=0)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.max() == pytest.approx(1.0) and r.min() == pytest.approx(0.0)
    X, y = D.circles(400, noise=0.0, factor=0.3, seed=0)
    r = np.hypot(X[:, 0], X[:, 1])
    assert np.allclose(r[y == 0], 1.0) and np.allclose(r[y == 1], 0.3)
    X, y = D.xor(400, noise=0.0, seed=0)
    assert np.array_equal(np.sign(X[:, 0]) != np.sign(X[:, 1]), y == 1)
    X, y = D.blobs(3000, 3, std=0.1, spread=2.0, seed=0)
    for c in range(3):
        a = 2 * np.pi * c / 3
        assert np.allclose(X[y == c].mean(axis=0), [2 * np.cos(a), 2 * np.sin(a)], atol=0.02)


def test_toy_defaults_are_declared_once():
    """The functions' own defaults are TOY_DEFAULTS, and toy_data maps the labs' settings onto each set."""
    assert D.TOY_NAMES == tuple(D.TOY_SETS) and D.MULTICLASS == ("spiral", "blobs")
    for name, d in D.TOY_DEFAULTS.items():
        sig = inspect.signature(D.TOY_SETS[name]).parameters
        assert sig["n"].default == d.points and sig[d.noise_arg].default == d.noise
        assert ("classes" in sig) == d.multiclass and (not d.multiclass or sig["classes"].default == d.classes)
        X, y = D.toy_data(name, seed=1)                   # every setting at its default
        X2, y2 = D.TOY_SETS[name](seed=1)
        assert np.array_equal(X, X2) and np.array_equal(y, y2) and len(np.unique(y)) == d.classes
    X, y = D.toy_data("blobs", 50, 0.0, 4, seed=0)        # blobs' noise is its std: 0 puts every point on a centre
    assert len(np.unique(X.round(12), axis=0)) == 4 and np.array_equal(np.unique(y), np.arange(4))
    X, y = D.toy_data("moons", 50, 0.3, classes=5, seed=0)  # two moons, whatever the classes setting says
    assert np.array_equal(np.unique(y), [0, 1])
    assert np.array_equal(X, D.moons(50, noise=0.3, seed=0)[0])
    with pytest.raises(ValueInputError, match="unknown data set 'swirl'"):
        D.toy_data("swirl")
    with pytest.raises(ValueInputError, match="noise must be ≤ 10, got 11"):
        D.toy_data("xor", noise=11)


def test_bad_toy_arguments():
    with pytest.raises(ValueInputError):
        D.make_toy("swirl")
    with pytest.raises(ValueInputError):
        D.spiral(0)
    with pytest.raises(ValueInputError):
        D.spiral(100, classes=1)
    with pytest.raises(ValueInputError):
        D.moons(100, noise=-1)
    with pytest.raises(ValueInputError):
        D.make_toy("xor", classes=3)


def test_train_val_split_is_stratified_and_seeded():
    X, y = D.spiral(300, 3, seed=0)
    Xt, yt, Xv, yv = D.train_val_split(X, y, 0.2, seed=1)
    assert len(Xv) == 60 and len(Xt) == 240 and np.array_equal(np.bincount(yv), [20, 20, 20])
    both = np.concatenate([Xt, Xv])
    assert np.array_equal(np.sort(both, axis=0), np.sort(X, axis=0))  # a partition
    again = D.train_val_split(X, y, 0.2, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((Xt, yt, Xv, yv), again))
    with pytest.raises(ShapeError):
        D.train_val_split(X, y[:-1])


def test_standardize_vectors_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    Xt = rng.normal(loc=[3.0, -1.0], scale=[2.0, 0.5], size=(500, 2))
    Xv = rng.normal(size=(50, 2))
    stats, (At, Av) = D.standardize(Xt, Xv)
    assert np.allclose(stats.mean, Xt.mean(axis=0)) and np.allclose(stats.std, Xt.std(axis=0))
    assert np.allclose(At.mean(axis=0), 0, atol=1e-12) and np.allclose(At.std(axis=0), 1)
    assert np.allclose(Av, (Xv - Xt.mean(axis=0)) / Xt.std(axis=0))
    assert np.allclose(stats.invert(Av), Xv)


def test_standardize_images_mean_image_and_channel_scale():
    rng = np.random.default_rng(1)
    Xt = rng.normal(size=(200, 3, 4, 4)) * np.array([1.0, 2.0, 5.0])[None, :, None, None] + 7.0
    stats, (At,) = D.standardize(Xt)
    assert stats.mean.shape == (3, 4, 4) and stats.std.shape == (3,)
    assert np.allclose(At.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(At.transpose(1, 0, 2, 3).reshape(3, -1).std(axis=1), 1)
    assert np.allclose(stats.std, [1, 2, 5], rtol=0.1)
    const = np.ones((5, 2))
    s, (c,) = D.standardize(const)
    assert np.all(np.isfinite(c)) and np.all(c == 0)


def test_digits():
    X, y = D.load_digits()
    assert X.shape == (1797, 1, 8, 8) and X.dtype == np.float64 and y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and set(np.unique(y)) == set(range(10))


def test_digits_are_read_once_shared_and_read_only(monkeypatch):
    """Jobs of several labs ask at once: one read, the same arrays for everyone, and nobody can change them."""
    import sklearn.datasets
    real, reads = sklearn.datasets.load_digits, []

    def slow_load():
        reads.append(1)
        time.sleep(0.05)                                   # long enough for the other threads to arrive
        return real()

    monkeypatch.setattr(D, "_DIGITS", None)               # a fresh process's cache
    monkeypatch.setattr(sklearn.datasets, "load_digits", slow_load)
    assert D.digits_if_loaded() is None
    got = []
    threads = [threading.Thread(target=lambda: got.append(D.load_digits())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == 1 and len(got) == 4
    X, y = got[0]
    assert all(g[0] is X and g[1] is y for g in got) and D.digits_if_loaded() == (X, y)
    assert not X.flags.writeable and not y.flags.writeable
    with pytest.raises(ValueError):
        X[0, 0, 0, 0] = 1.0
    fresh, _ = D.load_digits(cached=False)                # read again, the shared arrays untouched
    assert len(reads) == 2 and fresh is not X and np.array_equal(fresh, X) and D.load_digits()[0] is X


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ValueInputError, match="scikit-learn"):
        D.load_digits(cached=False)


# ------------------------------------------------------------------------------------------------ augmentation

@pytest.fixture
def images():
    return np.random.default_rng(2).uniform(size=(6, 2, 7, 9))


def test_augmentations_preserve_shape_dtype_and_are_seeded(images):
    fns = [lambda x, s: D.hflip(x, 0.5, s), lambda x, s: D.random_crop(x, 2, s),
           lambda x, s: D.rotate(x, 15, s), lambda x, s: D.rotate(x, 15, s, order="nearest"),
           lambda x, s: D.brightness_contrast(x, 0.2, 0.2, s), lambda x, s: D.cutout(x, 3, s)]
    for fn in fns:
        a = fn(images, 5)
        assert a.shape == images.shape and a.dtype == images.dtype
        assert np.array_equal(a, fn(images, 5))
    x32 = images.astype(np.float32)
    assert D.Augmenter(0.5, 1, 10, 0.1, 0.1, 2)(x32, np.random.default_rng(0)).dtype == np.float32


def test_flip_crop_rotate_values(images):
    assert np.array_equal(D.hflip(images, 1.0, 0), images[..., ::-1])
    assert np.array_equal(D.hflip(images, 0.0, 0), images)
    shifted = D.random_crop(images, 1, 0)
    # every output row/column is the input moved by at most one pixel (zeros brought in at the border)
    for i in range(len(images)):
        assert any(np.array_equal(shifted[i, :, 1:-1, 1:-1], images[i, :, 1 + dy:7 - 1 + dy, 1 + dx:9 - 1 + dx])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    assert np.allclose(D.rotate(images, 0.0, 0), images)


@pytest.mark.parametrize("order", ["nearest", "bilinear"])
def test_rotate_by_quarter_turns_matches_rot90(order):
    sq = np.arange(2 * 25.0).reshape(2, 1, 5, 5)
    out = D.rotate_by(sq, [90.0, -90.0], order)
    assert np.allclose(out[0, 0], np.rot90(sq[0, 0], 1), atol=1e-9)  # counter-clockwise on screen
    assert np.allclose(out[1, 0], np.rot90(sq[1, 0], -1), atol=1e-9)
    assert np.allclose(D.rotate_by(sq, 180.0, order)[:, 0], np.rot90(sq[:, 0], 2, axes=(1, 2)), atol=1e-9)
    small = D.rotate_by(sq, 7.0, order)
    assert small[0, 0, 2, 2] == pytest.approx(sq[0, 0, 2, 2])  # the centre stays put
    corner = D.rotate_by(np.ones((1, 1, 7, 7)), 45.0, order)
    assert corner[0, 0, 0, 0] == 0.0 and corner[0, 0, 3, 3] == pytest.approx(1.0)  # outside the image is 0


def test_cutout_and_brightness(images):
    out = D.cutout(images, 3, 0, fill=-1.0)
    changed = (out != images)
    assert np.all(changed.sum(axis=(1, 2, 3)) <= 3 * 3 * 2) and np.all(out[changed] == -1.0)
    same = D.brightness_contrast(images, 0.0, 0.0, 0)
    assert np.allclose(same, images)


def test_mixup_and_cutmix_soft_labels(images):
    y = np.array([0, 1, 2, 0, 1, 2])
    for fn in (D.mixup, D.cutmix):
        xm, ym = fn(images, y, 3, seed=4)
        assert xm.shape == images.shape and ym.shape == (6, 3)
        assert np.allclose(ym.sum(axis=1), 1.0) and np.all(ym >= 0)
        assert np.array_equal(fn(images, y, 3, seed=4)[1], ym)
    xm, ym = D.mixup(images, y, 3, alpha=0.4, seed=1)
    # mixup: the image is the same convex combination as its label (recover lam from the label weights)
    rng = np.random.default_rng(1)
    lam = rng.beta(0.4, 0.4, 6)
    perm = rng.permutation(6)
    assert np.allclose(xm, lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * images[perm])
    xc, yc = D.cutmix(images, y, 3, seed=2)
    rng = np.random.default_rng(2)
    rng.beta(1.0, 1.0, 6)
    perm = rng.permutation(6)
    onehot = np.eye(3)
    for i in range(6):  # the label weight of each source is its share of the pixels
        kept = np.mean(np.all(xc[i] == images[i], axis=0))
        assert np.allclose(yc[i], kept * onehot[y[i]] + (1 - kept) * onehot[y[perm[i]]])
    assert np.any(yc.max(axis=1) < 1)  # some labels really are mixed
    with pytest.raises(ValueInputError):
        D.mixup(images, np.array([0, 1, 2, 3, 4, 5]), 3)


def test_augment_settings_declare_the_preview_controls():
    """Ranges, defaults and switches declared once; the Augmenter and the mixing read them."""
    p = {q.name: q for q in params_of(D.AugmentSettings)}
    assert (p["flip"].low, p["flip"].high, p["flip"].default) == (0.0, 1.0, 0.5)
    assert (p["shift"].low, p["shift"].high, p["shift"].default) == (1, 3, 1)
    assert (p["degrees"].low, p["degrees"].high, p["degrees"].default) == (1.0, 45.0, 15.0)
    assert (p["brightness"].default, p["contrast"].default, p["cutout"].high, p["cutout"].default) == (0.2, 0.3, 6, 3)
    assert (p["mixup_alpha"].low, p["mixup_alpha"].high, p["mixup_alpha"].default) == (0.05, 10.0, 0.4)
    assert p["cutmix_alpha"].default == 1.0 and p["mix"].choices == D.MIX_MODES
    assert p["mix"].choice_label("none") == "None (hard labels)"
    s = D.AugmentSettings()
    assert s.augmenter() == D.Augmenter(shift=1, degrees=15.0) and s.pipeline() == ["shift", "rotate"]
    s = D.AugmentSettings(flip_on=True, shift_on=False, rotate_on=False, bc_on=True, cutout_on=True, mix="cutmix")
    assert s.augmenter() == D.Augmenter(flip=0.5, brightness=0.2, contrast=0.3, cutout=3)
    assert s.pipeline() == ["flip", "brightness/contrast", "cutout", "CutMix"] and s.alpha == 1.0
    with pytest.raises(ValueInputError, match="largest angle must be ≤ 45, got 90"):
        D.AugmentSettings(degrees=90)
    with pytest.raises(ValueInputError, match="unknown mixing 'blend'"):
        D.AugmentSettings(mix="blend")


def test_augment_batch_and_preview_replay_the_pipeline(images):
    y = np.array([0, 1, 2, 0, 1, 2])
    s = D.AugmentSettings(flip_on=True, cutout_on=True, mix="mixup", mixup_alpha=0.7, seed=3)
    xa, ya = D.augment_batch(images, y, 3, s, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    ref = s.augmenter()(images, rng)
    xm, ym = D.mixup(ref, y, 3, 0.7, rng)
    assert np.array_equal(xa, xm) and np.array_equal(ya, ym)
    xa, ya = D.augment_batch(images, y, 3, s.replace(mix="none"), np.random.default_rng(9))
    assert np.array_equal(ya, np.eye(3)[y])
    cells, soft = D.augment_preview(images, y, 4, 2, s, 3)
    assert cells.shape == (4, 3, 2, 7, 9) and soft.shape == (4, 3, 3)
    assert np.array_equal(cells[:, 0], images[:4]) and np.array_equal(soft[:, 0], np.eye(3)[y[:4]])
    for j in (1, 2):                                      # column j is augment_batch with default_rng([seed, j])
        xj, yj = D.augment_batch(images, y, 3, s, np.random.default_rng([3, j]))
        assert np.array_equal(cells[:, j], xj[:4]) and np.array_equal(soft[:, j], yj[:4])
    with pytest.raises(ValueInputError, match="AugmentSettings"):
        D.augment_batch(images, y, 3, D.Augmenter(), np.random.default_rng(0))
