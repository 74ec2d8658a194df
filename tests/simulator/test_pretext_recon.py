"""The reconstruction and photograph pretext tasks (simulator.labs.pretext_recon): each reaches a stated quality
with fixed seeds, the targets really are the data, masks are fresh per batch, validation never shares pixels with
training, and bad arguments raise our errors."""
from dataclasses import dataclass

import numpy as np
import pytest

from simulator.core.errors import ShapeError, StudioError, ValueInputError
from simulator.core.params import Settings, param, params_of
from simulator.data.colour import lab_to_rgb
from simulator.labs import pretext_recon as R
from simulator.labs.pretext_task import (
    INPUT_KINDS,
    PretextTask,
    Preview,
    Quality,
    digits_split,
)
from simulator.nn.network import Flatten, Linear, Network
from simulator.nn.trainer import Trainer


def train(task, epochs, seed=0):
    tr = Trainer(task.network, task.data, augment=task.augment, optimizer=task.optimizer, lr=task.lr,
                 epochs=epochs, batch_size=task.batch_size, seed=seed, norms_every=1_000_000)
    tr.run()
    return tr


# ------------------------------------------------------------------------------------------------ the contract

@pytest.fixture(scope="module")
def small_tasks():
    return {"autoencoder": R.make_autoencoder(seed=0),
            "inpainting": R.make_inpainting(seed=0),
            "colourisation": R.make_colourisation(seed=0, patches=800, patch=12, filters=8, depth=3),
            "jigsaw": R.make_jigsaw(seed=0, puzzles=3000, hidden=128)}


def test_registry_and_settings():
    assert set(R.RECON_SETTINGS) == set(R.RECON_FACTORIES) == {"autoencoder", "inpainting", "colourisation",
                                                              "jigsaw"}
    for key, cls in R.RECON_SETTINGS.items():
        assert params_of(cls), key                        # declared params: the GUI builds its form from them
        for p in params_of(cls):
            assert p.check(p.default) == p.default


@pytest.mark.parametrize("key", ["autoencoder", "inpainting", "colourisation", "jigsaw"])
def test_tasks_follow_the_contract(small_tasks, key):
    task = small_tasks[key]
    assert isinstance(task, PretextTask) and task.key == key
    assert task.input_kind == ("digits" if key in ("autoencoder", "inpainting") else "photo")
    assert task.input_kind in INPUT_KINDS
    assert len(task.lecture) > 300
    X, T, Xv, Tv = task.data
    net = task.network
    assert X.shape[1:] == Xv.shape[1:] == net.input_shape and len(X) == len(T) and len(Xv) == len(Tv)
    if task.input_kind == "digits":
        assert net.input_shape == (1, 8, 8)
    # the encoder is a proper prefix, the head / decoder follows
    assert 1 <= task.encoder_layers < len(net.layers)
    assert net.layers[task.encoder_layers - 1].spec.ROLE in ("weights", "activation")
    if key == "jigsaw":
        assert T.dtype.kind == "i" and T.max() < net.num_classes and net.loss_kind == "softmax"
    else:
        assert T.shape[1:] == (net.num_classes,) and net.loss_kind == "mse"
    q = task.quality(net)
    assert isinstance(q, Quality) and np.isfinite(q.value) and np.isfinite(q.baseline) and q.text
    pv = task.preview(net, 5)
    assert isinstance(pv, Preview) and len(pv.rows) >= 2
    for caption, imgs in pv.rows:
        assert caption and len(imgs) == 5 and imgs.ndim in (3, 4)
        assert imgs.min() >= 0.0 and imgs.max() <= 1.0
        if imgs.ndim == 4:
            assert imgs.shape[-1] == 3


# ------------------------------------------------------------------------------------------------ autoencoder

def test_autoencoder_reconstructs_far_better_than_the_mean_digit():
    task = R.make_autoencoder(seed=0)
    before = task.quality(task.network)
    train(task, 10)
    q = task.quality(task.network)
    assert q.name == "reconstruction MSE" and not q.higher_is_better
    assert q.baseline == pytest.approx(before.baseline)
    # measured: 0.0124 against the mean digit's 0.0738 after 10 epochs (the default 80: 0.0069)
    assert q.value < 0.02
    assert q.value < 0.3 * q.baseline
    # the baseline is what it says: the mean training digit against the validation digits
    X, T, Xv, Tv = task.data
    assert q.baseline == pytest.approx(np.mean((T.mean(axis=0) - Tv) ** 2))
    assert np.array_equal(T, X.reshape(len(X), 64)) and np.array_equal(Tv, Xv.reshape(len(Xv), 64))


def test_autoencoder_preview_rows():
    task = R.make_autoencoder(seed=0, bottleneck=4)
    pv = task.preview(task.network, 10)
    (c0, orig), (c1, rec) = pv.rows
    assert c0 == "original" and c1 == "reconstruction" and orig.shape == rec.shape == (10, 8, 8)
    _, _, Xv, _ = task.data
    # one digit of each class, in order
    _, _, _, yv = R.digit_split(0)
    idx = [int(np.flatnonzero((Xv[:, 0] == o).all(axis=(1, 2)))[0]) for o in orig]
    assert list(yv[idx]) == list(range(10))
    np.testing.assert_allclose(rec, np.clip(task.network.forward(Xv[idx]), 0, 1).reshape(10, 8, 8), atol=1e-6)


def test_latent_codes_two_numbers_are_the_code_itself():
    task = R.make_autoencoder(seed=0, bottleneck=2)
    lc = R.latent_codes(task.network, task.encoder_layers, seed=0)
    _, _, Xv, yv = R.digit_split(0)
    assert lc.codes.shape == (len(Xv), 2) and np.array_equal(lc.labels, yv)
    np.testing.assert_allclose(lc.codes, task.network.layer_outputs(Xv)[3], rtol=1e-6)
    assert lc.axes == ("code 1", "code 2")


def test_latent_codes_wider_are_projected_by_pca():
    task = R.make_autoencoder(seed=0, bottleneck=8)
    train(task, 3)
    X = task.data[0]
    y = np.arange(len(X)) % 10
    lc = R.latent_codes(task.network, task.encoder_layers, X=X, y=y)
    codes = np.asarray(task.network.layer_outputs(X)[3], np.float64)
    centred = codes - codes.mean(axis=0)
    _, evecs = np.linalg.eigh(np.cov(centred.T))
    top = evecs[:, ::-1][:, :2]
    ref = centred @ top
    for k in range(2):          # the same axes as the covariance's leading eigenvectors, up to sign
        assert abs(np.corrcoef(ref[:, k], lc.codes[:, k])[0, 1]) > 0.999
    assert np.var(lc.codes[:, 0]) >= np.var(lc.codes[:, 1])
    assert abs(np.corrcoef(lc.codes.T)[0, 1]) < 1e-6       # principal components are uncorrelated
    assert "PC 1" in lc.axes[0] and "%" in lc.axes[0]


def test_latent_codes_errors():
    task = R.make_autoencoder(seed=0)
    with pytest.raises(ValueInputError):
        R.latent_codes("net")
    with pytest.raises(ValueInputError):
        R.latent_codes(task.network, 0)
    with pytest.raises(ShapeError):
        R.latent_codes(task.network, 4, X=np.zeros((3, 64)), y=np.zeros(3, int))


# ------------------------------------------------------------------------------------------------ inpainting

def test_hide_patches_hides_one_square_per_image():
    x = np.random.default_rng(0).random((200, 1, 8, 8))
    masked, mask = R.hide_patches(x, 3, np.random.default_rng(1))
    assert mask.shape == (200, 8, 8) and np.all(mask.sum(axis=(1, 2)) == 9)
    for m in mask[:20]:
        r, c = np.argwhere(m).min(axis=0)
        assert m[r:r + 3, c:c + 3].all()                  # one contiguous 3x3 square
    assert np.all(masked[:, 0][mask] == R.MASK_VALUE)
    assert np.array_equal(masked[:, 0][~mask], x[:, 0][~mask])
    # every place is drawn: all 6x6 top-left corners appear among 200 draws
    corners = {tuple(np.argwhere(m).min(axis=0)) for m in mask}
    assert len(corners) == 36


def test_inpainting_batches_are_made_from_their_targets_with_fresh_holes():
    task = R.make_inpainting(seed=0, hole=4)
    X, T, _, _ = task.data
    seen: dict[int, list[tuple[int, int]]] = {}
    batches = []
    aug = task.augment

    def recording(xb, yb, rng):
        out = aug(xb, yb, rng)
        batches.append((np.asarray(xb).copy(), np.asarray(yb).copy(), *map(np.copy, out)))
        return out
    recording.takes_labels = True
    tr = Trainer(task.network, task.data, augment=recording, epochs=2, batch_size=64, seed=0)
    steps = tr.iters_per_epoch * 2
    for _ in range(steps):
        tr.step()
    row_of = {T[i].astype(np.float64).tobytes(): i for i in range(len(T))}
    for xb, yb, xa, ta in batches:
        # the target of the batch is the unmasked digit itself (a row of the data's targets), unchanged
        assert np.array_equal(ta, yb)
        full = yb.reshape(-1, 1, 8, 8)
        hidden = xa == R.MASK_VALUE
        assert np.all(hidden.sum(axis=(1, 2, 3)) == 16)
        assert np.array_equal(xa[~hidden], full[~hidden])   # outside the hole the input is the target
        for i in range(len(yb)):
            k = row_of[yb[i].astype(np.float64).tobytes()]
            # the stored input (one fixed hole) is the same digit
            assert np.array_equal(X[k][X[k] != R.MASK_VALUE], T[k].reshape(1, 8, 8)[X[k] != R.MASK_VALUE])
            seen.setdefault(k, []).append(tuple(np.argwhere(hidden[i, 0]).min(axis=0)))
    assert len(seen) == len(T) and all(len(v) == 2 for v in seen.values())
    moved = np.mean([a != b for a, b in seen.values()])
    assert moved > 0.9               # the same digit got a new hole in the second epoch (1/25 keep theirs)
    # and within one batch, holes are drawn per image, not one place for the whole batch
    xa = batches[0][2]
    assert len({tuple(np.argwhere(m[0]).min(axis=0)) for m in (xa == R.MASK_VALUE)}) > 10


def test_inpainting_fills_holes_better_than_the_mean_digit():
    task = R.make_inpainting(seed=0)
    train(task, 15)
    q = task.quality(task.network)
    assert q.name == "hidden-pixel MSE" and not q.higher_is_better
    # measured: 0.053 against 0.099 (seed 0) after 15 epochs; 0.042 after the default 100
    assert q.value < 0.7 * q.baseline


def test_inpainting_quality_counts_only_the_hidden_pixels():
    task = R.make_inpainting(seed=0)
    _, _, Xvm, Tv = task.data
    hole = Xvm[:, 0] == R.MASK_VALUE
    T = task.data[1]
    # a network that always answers the mean training digit scores exactly the baseline; one that answers 0
    # scores the mean square of the hidden pixels alone (the visible ones do not count)
    net = Network((1, 8, 8), [Flatten(), Linear(64, init="zeros")], loss="mse")
    net.params["fc1.b"][:] = T.mean(axis=0)
    assert task.quality(net).value == pytest.approx(task.quality(net).baseline, rel=1e-5)
    net.params["fc1.b"][:] = 0.0
    truth = Tv.reshape(-1, 8, 8)[hole]
    assert task.quality(net).value == pytest.approx(np.mean(truth ** 2), rel=1e-5)


def test_inpainting_preview_rows():
    task = R.make_inpainting(seed=0, hole=3)
    pv = task.preview(task.network, 6)
    caps = [c for c, _ in pv.rows]
    assert caps == ["original", "input (hole shown grey)", "reconstruction", "hole filled in"]
    orig, shown, rec, filled = (r for _, r in pv.rows)
    _, _, Xvm, Tv = task.data
    idx = [int(np.flatnonzero((Tv == o.ravel()).all(axis=1))[0]) for o in orig]
    hole = Xvm[idx, 0] == R.MASK_VALUE                  # the validation digits' fixed holes
    assert np.all(hole.sum(axis=(1, 2)) == 9)
    assert np.all(shown[hole] == 0.5) and np.array_equal(shown[~hole], orig[~hole])
    np.testing.assert_allclose(rec, np.clip(task.network.forward(Xvm[idx]), 0, 1).reshape(6, 8, 8), atol=1e-6)
    assert np.array_equal(filled[~hole], orig[~hole])
    assert np.allclose(filled[hole], rec[hole])


# ------------------------------------------------------------------------------------------------ photographs

def _find(img: np.ndarray, patch: np.ndarray) -> list[tuple[int, int]]:
    """Every top-left corner where ``patch`` occurs exactly in ``img`` (2-D)."""
    p = patch.shape[0]
    win = np.lib.stride_tricks.sliding_window_view(img, (p, p))
    return [tuple(map(int, rc)) for rc in np.argwhere(np.all(np.abs(win - patch) < 1e-9, axis=(2, 3)))]


@pytest.fixture(scope="module")
def colour_task():
    return R.make_colourisation(seed=0, patches=800, patch=12, filters=8, depth=3)


def test_colour_targets_are_the_patch_colours_and_validation_is_apart(colour_task):
    X, T, Xv, Tv = colour_task.data
    p = 12
    photos = [R.photo_lab(n, 160) for n in R.PHOTO_NAMES]
    W = photos[0].shape[1]
    a, b = int(R.VAL_STRIP[0] * W), int(R.VAL_STRIP[1] * W)
    for inputs, targets, val in ((X, T, False), (Xv, Tv, True)):
        for i in range(0, 40, 4):
            L = (inputs[i, 0] + 1.0) * 50.0
            hits = [(k, rc) for k, ph in enumerate(photos) for rc in _find(ph[..., 0], L)]
            assert hits, "the input is not the L channel of a photo patch"
            k, (r, c) = hits[0]
            ab = photos[k][r:r + p, c:c + p, 1:]
            np.testing.assert_allclose(targets[i].reshape(2, p, p), np.moveaxis(ab, -1, 0) / R.AB_SCALE,
                                       atol=1e-12)
            inside = a <= c and c + p <= b
            outside = c + p <= a or c >= b
            assert inside if val else outside


def test_colourisation_beats_the_mean_colour(colour_task):
    task = colour_task
    before = task.quality(task.network)
    train(task, 5)
    q = task.quality(task.network)
    assert q.name == "colour (ab) MSE" and not q.higher_is_better
    assert q.baseline == pytest.approx(before.baseline)
    # measured: 0.027 against 0.049 (seed 0) after 5 epochs on 800 12x12 patches; defaults (6 epochs, 3000 16x16
    # patches): 0.016 against 0.046
    assert q.value < 0.75 * q.baseline
    _, T, _, Tv = task.data
    mean_ab = T.reshape(len(T), 2, -1).mean(axis=(0, 2))
    assert q.baseline == pytest.approx(np.mean((Tv.reshape(len(Tv), 2, -1) - mean_ab[None, :, None]) ** 2))


def test_colour_preview_rows(colour_task):
    pv = colour_task.preview(colour_task.network, 4)
    rows = dict(pv.rows)
    assert list(rows) == ["grey input (L only)", "predicted colour", "true colour", "mean colour (baseline)"]
    grey, true = rows["grey input (L only)"], rows["true colour"]
    assert grey.shape == true.shape == (4, 12, 12, 3)
    np.testing.assert_allclose(grey[..., 0], grey[..., 1], atol=1e-9)   # grey: no colour
    assert np.abs(true[..., 0] - true[..., 2]).max() > 0.05              # the truth has colour
    # the preview takes turns between the two photos
    photos = [R.photo_lab(n, 160) for n in R.PHOTO_NAMES]
    rgb = [lab_to_rgb(ph) for ph in photos]
    where = [next(k for k in range(2) if _find(rgb[k][..., 0], t[..., 0])) for t in true]
    assert where == [0, 1, 0, 1]


def test_colour_flip_moves_colours_with_pixels():
    x = np.random.default_rng(0).random((50, 1, 4, 4))
    t = np.random.default_rng(1).random((50, 32))
    aug = R.FlipPairs(4)
    xa, ta = aug(x, t, np.random.default_rng(2))
    flipped = np.array([not np.array_equal(xa[i], x[i]) for i in range(50)])
    assert 10 < flipped.sum() < 40
    for i in range(50):
        tt = t[i].reshape(2, 4, 4)
        want = tt[..., ::-1] if flipped[i] else tt
        np.testing.assert_array_equal(ta[i].reshape(2, 4, 4), want)
        np.testing.assert_array_equal(xa[i], x[i][..., ::-1] if flipped[i] else x[i])


def test_colourise_photo_tiles_back_together(colour_task):
    grey, pred, true = R.colourise_photo(colour_task.network, "flower.jpg", 160)
    n = 160 // 12 * 12
    assert grey.shape == pred.shape == true.shape == (n, n, 3)
    np.testing.assert_allclose(true, lab_to_rgb(R.photo_lab("flower.jpg", 160)[:n, :n]), atol=1e-9)
    with pytest.raises(ValueInputError):
        R.colourise_photo(colour_task.network, "moon.jpg")
    with pytest.raises(ShapeError):
        R.colourise_photo(R.make_autoencoder().network)


def test_jigsaw_permutations_are_far_apart():
    p4 = R.jigsaw_permutations(2, 4)
    assert p4.shape == (4, 4)
    for p in (p4, R.jigsaw_permutations(3, 8)):
        assert np.array_equal(p[0], np.arange(p.shape[1]))        # starts from the unshuffled order
        assert all(sorted(r) == list(range(p.shape[1])) for r in p)
        d = (p[:, None, :] != p[None, :, :]).sum(axis=2)
        np.fill_diagonal(d, p.shape[1])
        assert d.min() == p.shape[1]                               # every pair differs in every place
    p24 = R.jigsaw_permutations(2, 24)
    assert len({tuple(r) for r in p24}) == 24
    with pytest.raises(ValueInputError):
        R.jigsaw_permutations(2, 25)
    with pytest.raises(ValueInputError):
        R.jigsaw_permutations(4, 8)


def test_jigsaw_label_is_the_shuffle_applied():
    task = R.make_jigsaw(seed=0, grid=2, permutations=6, tile=8, gap=2, jitter=0, puzzles=500)
    X, y, Xv, yv = task.data
    perms = R.jigsaw_permutations(2, 6)
    photos = [R.photo_gray(n, 160) for n in R.PHOTO_NAMES]
    for inputs, labels in ((X, y), (Xv, yv)):
        for i in range(6):
            tiles = inputs[i] + 0.5
            # slot k shows the tile from position perms[label][k]: undo it and the tiles sit in a 2x2 grid of the
            # photo, 2 px apart
            original = np.empty_like(tiles)
            original[perms[labels[i]]] = tiles
            hits = [(k, rc) for k, ph in enumerate(photos) for rc in _find(ph, original[0])]
            ok = False
            for k, (r, c) in hits:
                ph = photos[k]
                ok |= all(np.allclose(ph[r + q // 2 * 10:r + q // 2 * 10 + 8, c + q % 2 * 10:c + q % 2 * 10 + 8],
                                      original[q]) for q in range(4))
            assert ok


def test_jigsaw_is_solved_well_above_chance():
    task = R.make_jigsaw(seed=0, puzzles=3000, hidden=128)
    train(task, 4)
    q = task.quality(task.network)
    assert q.name == "permutation accuracy" and q.higher_is_better and q.baseline == pytest.approx(1 / 8)
    # measured: 44% (seed 0) against 12.5% after 4 epochs on 3000 puzzles; defaults (8 epochs, 10000): 66%
    assert q.value > 2.5 * q.baseline
    pv = task.preview(task.network, 40)
    assert [c for c, _ in pv.rows] == ["shuffled tiles (what the network sees)", "put back by the prediction",
                                       "original arrangement"]
    assert pv.rows[0][1].shape == (40, 3 * 8 + 2 * 2, 3 * 8 + 2 * 2)
    assert pv.matrix.shape == (8, 8) and np.allclose(pv.matrix.sum(axis=1), 1.0)
    assert np.trace(pv.matrix) / 8 > 2.5 / 8                       # the diagonal (right answers) dominates
    # putting the tiles back by the prediction gives the original arrangement exactly when the prediction is right
    perms = R.jigsaw_permutations(3, 8)
    shuffled, placed, original = (r for _, r in pv.rows)

    def tiles(img):
        return np.stack([img[q // 3 * 10:q // 3 * 10 + 8, q % 3 * 10:q % 3 * 10 + 8] for q in range(9)])
    right = []
    for i in range(40):
        shown, orig = tiles(shuffled[i]), tiles(original[i])
        label = [k for k in range(8) if np.array_equal(orig[perms[k]], shown)]
        assert len(label) == 1
        pred = int(task.network.predict(shown[None] - 0.5)[0])
        right.append(pred == label[0])
        assert np.array_equal(placed[i], original[i]) == right[-1]
    assert sum(right) >= 10, sum(right)        # chance: 5 of 40


# ------------------------------------------------------------------------------------------------ arguments

@dataclass(frozen=True)
class LabLike(Settings):
    """Stands for the lab's settings (simulator.labs.selfsup.SelfSupSettings): a Settings with a seed."""

    seed: int = param(0, low=0)
    epochs: int = param(5, low=1)


def test_factories_read_the_seed_from_the_lab_settings():
    a = R.make_autoencoder(LabLike(seed=3))
    b = R.make_autoencoder(seed=3)
    c = R.make_autoencoder(LabLike(seed=3), seed=4)                # an explicit seed wins
    assert all(np.array_equal(a.network.params[k], b.network.params[k]) for k in a.network.params)
    assert not np.array_equal(a.network.params["fc1.w"], c.network.params["fc1.w"])
    d = R.make_autoencoder(LabLike(seed=3), options=R.AutoencoderSettings(bottleneck=5))
    e = R.make_autoencoder(R.AutoencoderSettings(bottleneck=5), seed=3)
    f = R.make_autoencoder(LabLike(seed=3), bottleneck=5)
    assert d.network.layers[3].out_shape == e.network.layers[3].out_shape == f.network.layers[3].out_shape == (5,)
    assert np.array_equal(d.network.params["fc2.w"], e.network.params["fc2.w"])
    with pytest.raises(ValueInputError, match="once"):
        R.make_autoencoder(R.AutoencoderSettings(), options=R.AutoencoderSettings())
    with pytest.raises(ValueInputError):
        R.make_autoencoder(options=R.InpaintSettings())


def test_digits_tasks_train_on_the_shared_split():
    split = digits_split(2)
    for task in (R.make_autoencoder(seed=2), R.make_inpainting(seed=2)):
        X, T, Xv, Tv = task.data
        assert np.array_equal(T, split.X_train.reshape(len(split.X_train), 64))
        assert np.array_equal(Tv, split.X_test.reshape(len(split.X_test), 64))
        if task.key == "autoencoder":
            assert np.array_equal(X, split.X_train) and np.array_equal(Xv, split.X_test)
        else:
            visible = X != R.MASK_VALUE
            assert np.array_equal(X[visible], split.X_train[visible])


# ------------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("call, err", [
    (lambda: R.make_autoencoder(settings=R.InpaintSettings()), ValueInputError),
    (lambda: R.make_autoencoder(settings={"seed": 1}), ValueInputError),
    (lambda: R.make_jigsaw(seed=1.5), ValueInputError),
    (lambda: R.make_autoencoder(bottleneck=0), ValueInputError),
    (lambda: R.make_autoencoder(output="tanh"), ValueInputError),
    (lambda: R.make_inpainting(hole=7), ValueInputError),
    (lambda: R.make_inpainting(holes=3), ValueInputError),
    (lambda: R.make_inpainting(seed=-1), ValueInputError),
    (lambda: R.make_colourisation(patch=32, photo_size=64), ValueInputError),
    (lambda: R.make_colourisation(filters=2.5), ValueInputError),
    (lambda: R.make_jigsaw(grid=2, permutations=30), ValueInputError),
    (lambda: R.make_jigsaw(grid=3, tile=16), ValueInputError),
    (lambda: R.HoleMasker(9), ShapeError),
    (lambda: R.hide_patches(np.zeros((2, 8, 8)), 3, np.random.default_rng()), ShapeError),
])
def test_bad_arguments_raise_our_errors(call, err):
    with pytest.raises(err) as info:
        call()
    assert isinstance(info.value, StudioError) and str(info.value)


def test_preview_and_quality_refuse_another_network(small_tasks):
    task = small_tasks["autoencoder"]
    other = small_tasks["jigsaw"].network
    with pytest.raises(ShapeError):
        task.quality(other)
    with pytest.raises(ShapeError):
        small_tasks["jigsaw"].preview(task.network, 3)
    with pytest.raises(ValueInputError):
        task.preview(task.network, 0)
    with pytest.raises(ValueInputError):
        task.quality("network")
