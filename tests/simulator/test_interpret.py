"""Interpretability on real networks: input gradients against central differences, occlusion against direct
recomputation, class visualisation, FGSM on a trained digits CNN, embeddings and neighbours (simulator.labs.interpret)."""
import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.labs.interpret import (blur, class_visualisation, digits_cnn, embed, fgsm, hidden_features, input_gradient,
                                 iterative_fgsm, nearest_neighbours, occlusion_map, quick_digits_model, saliency_map,
                                 softmax)
from simulator.nn.network import (Activation, AvgPool, BatchNorm, Conv2d, Dropout, Flatten, LayerNorm, Linear,
                                  Network)
from simulator.nn.trainer import Trainer


@pytest.fixture(scope="module")
def model():
    return quick_digits_model(seed=0)       # ~0.5 s: a CNN at about 96% validation accuracy


def _f64_networks():
    """A CNN and a net with every remaining layer kind, float64; the second trained a few steps so batch norm's
    running statistics are not the identity."""
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (40, 1, 8, 8))
    y = rng.integers(0, 10, 40)
    cnn = digits_cnn(seed=3, dtype=np.float64)
    other = Network((1, 8, 8), [Conv2d(4, 3, pad=1), BatchNorm(), Activation("tanh"), AvgPool(2, 2), Flatten(),
                                LayerNorm(), Linear(16), Activation("gelu"), Dropout(0.3), BatchNorm(), Linear(10)],
                    seed=2, dtype=np.float64)
    Trainer(other, (X, y, None, None), "Adam", lr=1e-2, batch_size=20, epochs=3, seed=0).run()
    return [cnn, other], X


def _central(f, x, idx, h=1e-6):
    xp, xm = x.copy(), x.copy()
    xp[idx] += h
    xm[idx] -= h
    return (f(xp) - f(xm)) / (2 * h)


def test_score_gradient_matches_central_differences():
    nets, X = _f64_networks()
    x = X[:3]
    for net in nets:
        for cls in (0, 7):
            dx, scores = input_gradient(net, x, cls, "score")
            assert dx.shape == x.shape
            np.testing.assert_allclose(scores, net.forward(x, "eval"))
            for idx in [(0, 0, 3, 4), (1, 0, 5, 2), (2, 0, 0, 0), (2, 0, 7, 6)]:
                num = _central(lambda z: net.forward(z, "eval")[idx[0], cls], x, idx)
                assert dx[idx] == pytest.approx(num, rel=1e-5, abs=1e-8), (net, cls, idx)


def test_loss_gradient_is_each_samples_own_loss_gradient():
    nets, X = _f64_networks()
    x, y = X[:4], np.array([1, 2, 3, 4])
    for net in nets:
        dx, _ = input_gradient(net, x, y, "loss")
        for idx in [(0, 0, 2, 2), (3, 0, 4, 5)]:
            i = idx[0]
            num = _central(lambda z: net.data_loss(net.forward(z[i:i + 1], "eval"), y[i:i + 1])[0], x, idx)
            assert dx[idx] == pytest.approx(num, rel=1e-5, abs=1e-8)


def test_saliency_is_the_channel_max_of_the_absolute_gradient():
    nets, X = _f64_networks()
    net = nets[0]
    x = X[:2]
    s = saliency_map(net, x, 4)
    assert s.shape == (2, 8, 8) and np.all(s >= 0)
    for (r, c) in [(1, 1), (6, 3)]:
        num = _central(lambda z: net.forward(z, "eval")[1, 4], x, (1, 0, r, c))
        assert s[1, r, c] == pytest.approx(abs(num), rel=1e-5, abs=1e-8)
    # default class: each sample's prediction
    pred = net.predict(x)
    np.testing.assert_allclose(saliency_map(net, x), np.stack([saliency_map(net, x[i:i + 1], pred[i])[0]
                                                                for i in range(2)]))


def test_occlusion_values_equal_a_direct_recomputation(model):
    net, x = model.network, model.data.X_val[5]
    cls = int(model.data.y_val[5])
    for measure in ("prob", "score"):
        r = occlusion_map(net, x, cls, patch=3, stride=2, fill=0.5, measure=measure)
        assert r.drops.shape == (3, 3) and list(r.rows) == [0, 2, 4] and list(r.cols) == [0, 2, 4]
        base = net.forward(x[None], "eval")
        value = (lambda s: softmax(s)[0, cls]) if measure == "prob" else (lambda s: float(s[0, cls]))
        assert r.base == pytest.approx(value(base), rel=1e-6)
        for i, j in [(0, 1), (2, 2), (1, 0)]:
            occ = x.copy()
            occ[:, r.rows[i]:r.rows[i] + 3, r.cols[j]:r.cols[j] + 3] = 0.5
            direct = value(base) - value(net.forward(occ[None], "eval"))
            assert r.drops[i, j] == pytest.approx(direct, rel=1e-5, abs=1e-6)
        # each pixel's value is the mean drop of the patches covering it: pixel (0, 0) only by patch (0, 0)
        assert r.pixel_map[0, 0] == pytest.approx(r.drops[0, 0])
        assert r.pixel_map[2, 2] == pytest.approx(np.mean(r.drops[:2, :2]))
        assert np.isnan(r.pixel_map[7, 7])      # stride 2 with patch 3 never reaches the last column
    with pytest.raises(ValueInputError):
        occlusion_map(net, x, cls, patch=9)
    with pytest.raises(ShapeError):
        occlusion_map(net, model.data.X_val[:2], cls)


def test_class_visualisation_increases_the_class_score(model):
    net = model.network
    for cls in (0, 3, 8):
        r = class_visualisation(net, cls, steps=60, lr=0.05, l2_reg=0.05, seed=0, blur_every=10,
                                pixel_range=(0.0, 1.0))
        assert r.image.shape == (1, 8, 8) and len(r.scores) == 61
        assert r.scores[-1] > r.scores[0] + 5.0
        assert r.image.min() >= 0.0 and r.image.max() <= 1.0
        assert net.predict(r.image[None])[0] == cls
    # without a clip and blur the regularised objective itself rises at a small enough step
    r = class_visualisation(net, 2, steps=40, lr=0.01, l2_reg=0.1, seed=1)
    assert r.objectives[-1] > r.objectives[0]
    # seeded: the same arguments give the same image
    again = class_visualisation(net, 2, steps=40, lr=0.01, l2_reg=0.1, seed=1)
    np.testing.assert_array_equal(r.image, again.image)


def test_blur_keeps_constants_and_smooths_a_spike():
    c = np.full((1, 5, 5), 2.0)
    np.testing.assert_allclose(blur(c), c)
    s = np.zeros((5, 5))
    s[2, 2] = 16.0
    b = blur(s)
    assert b[2, 2] == pytest.approx(4.0) and b[1, 2] == pytest.approx(2.0) and b[1, 1] == pytest.approx(1.0)


def test_fgsm_flips_predictions_at_eps_0_15(model):
    # On [0, 1] digits, eps = 0.15 (about 2.4 of the 16 grey levels) per pixel.
    net, Xv, yv = model.network, model.data.X_val, model.data.y_val
    ok = net.predict(Xv) == yv
    assert ok.mean() > 0.93
    xa = fgsm(net, Xv, yv, 0.15, pixel_range=(0.0, 1.0))
    flipped = (net.predict(xa) != yv) & ok
    assert flipped.sum() > 0.5 * ok.sum()
    # unclipped, the perturbation is exactly eps in max-norm (float32 rounding aside)
    xu = fgsm(net, Xv[:20], yv[:20], 0.15)
    assert np.max(np.abs(xu - Xv[:20])) == pytest.approx(0.15, rel=1e-6)
    assert np.all(np.isclose(np.abs(xu - Xv[:20]), 0.15, rtol=1e-5) | (xu == Xv[:20]))
    assert xa.min() >= 0.0 and xa.max() <= 1.0
    # eps 0 changes nothing
    np.testing.assert_array_equal(fgsm(net, Xv[:5], yv[:5], 0.0), Xv[:5])


def test_iterative_fgsm_stays_in_the_ball_and_beats_one_step(model):
    net, Xv, yv = model.network, model.data.X_val[:120], model.data.y_val[:120]
    eps = 0.1
    xi = iterative_fgsm(net, Xv, yv, eps, alpha=0.025, steps=10, pixel_range=(0.0, 1.0))
    assert np.max(np.abs(xi - Xv)) <= eps + 1e-6
    assert xi.min() >= 0.0 and xi.max() <= 1.0
    acc_iter = np.mean(net.predict(xi) == yv)
    acc_one = np.mean(net.predict(fgsm(net, Xv, yv, eps, (0.0, 1.0))) == yv)
    assert acc_iter < acc_one < np.mean(net.predict(Xv) == yv)


def test_hidden_features_are_the_input_of_the_last_layer(model):
    net, Xv = model.network, model.data.X_val[:50]
    F = hidden_features(net, Xv, batch_size=16)
    assert F.shape == (50, 64) and np.all(F >= 0)            # after the ReLU
    W, b = net.params["fc2.w"], net.params["fc2.b"]
    np.testing.assert_allclose(F @ W + b, net.forward(Xv, "eval"), rtol=1e-4, atol=1e-4)


def test_embedding_shapes_and_determinism(model):
    net, Xv = model.network, model.data.X_val[:150]
    for method in ("pca", "tsne"):
        a = embed(net, Xv, method, seed=0)
        b = embed(net, Xv, method, seed=0)
        assert a.shape == (150, 2) and np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b)
    F = hidden_features(net, Xv)
    np.testing.assert_allclose(embed(None, None, "pca", features=F), embed(net, Xv, "pca"))
    with pytest.raises(ValueInputError):
        embed(net, Xv, "umap")


def test_nearest_neighbours_match_brute_force(model):
    rng = np.random.default_rng(0)
    F = rng.standard_normal((60, 7))
    for q in (0, 17, 59):
        nn = nearest_neighbours(F, q, k=6)
        d = [(float(np.sum((F[i] - F[q]) ** 2)), i) for i in range(60) if i != q]
        assert list(nn) == [i for _, i in sorted(d)[:6]]
    # images are flattened; the query is never its own neighbour even with duplicates
    X = model.data.X_val[:30]
    X2 = np.concatenate([X, X[:1]])
    assert list(nearest_neighbours(X2, 0, 1)) == [30]
    assert 0 not in nearest_neighbours(X2, 0, 29)


def test_embedding_of_a_one_unit_hidden_layer_is_refused_clearly():
    from simulator.core.errors import ShapeError
    from simulator.labs.interpret import embed
    from simulator.nn.network import Activation, Flatten, Linear, Network
    net = Network((1, 8, 8), [Flatten(), Linear(1), Activation("relu"), Linear(10)], seed=0)
    x = np.random.default_rng(0).normal(size=(12, 1, 8, 8))
    for method in ("pca", "tsne"):
        with pytest.raises(ShapeError, match="at least 2"):
            embed(net, x, method)


def test_iterative_fgsm_refuses_negative_steps_and_alpha():
    from simulator.core.errors import ValueInputError
    from simulator.labs.interpret import iterative_fgsm
    from simulator.nn.network import Flatten, Linear, Network
    net = Network((1, 8, 8), [Flatten(), Linear(10)], seed=0)
    x = np.zeros((1, 1, 8, 8))
    with pytest.raises(ValueInputError):
        iterative_fgsm(net, x, np.array([3]), 0.1, alpha=-0.01)
    with pytest.raises(ValueInputError):
        iterative_fgsm(net, x, np.array([3]), 0.1, steps=-1)
