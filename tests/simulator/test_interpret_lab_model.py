"""The interpretability lab's model without Qt: standardised models shown as raw images, the quick views against the
simulator functions, the jobs, and bad input refused with a learner-readable message and no change of state."""
import math

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Progress, run_job
from simulator.data.datasets import standardize
from simulator.labs import interpret as I
from simulator.labs.interpret_lab import (AttackSettings, ClassVisSettings, EmbeddingSettings, ImageSet,
                                          InterpretLabModel, OcclusionSettings, QuickModelSettings, SaliencySettings)
from simulator.labs.search import grid_search, random_search
from simulator.nn.network import Flatten, Linear, Network
from simulator.nn.trainer import Trainer


@pytest.fixture(scope="module")
def standardised():
    """A digits CNN trained on standardised inputs (the playground's default), with the raw images and the stats."""
    d = I.digits_data(0)
    stats, (Xtr, Xv) = standardize(d.X_train, d.X_val)
    net = I.digits_cnn(0)
    Trainer(net, (Xtr.astype(np.float32), d.y_train, Xv.astype(np.float32), d.y_val), "Adam", lr=3e-3,
            batch_size=32, epochs=3, seed=0).run()
    return net, d, stats, (Xtr.astype(np.float32), d.y_train, Xv.astype(np.float32), d.y_val)


@pytest.fixture
def model(standardised):
    net, _, stats, data = standardised
    m = InterpretLabModel()
    m.set_network(net, data, stats)
    return m


def test_standardised_inputs_are_shown_as_the_raw_digits(standardised, model):
    net, d, stats, data = standardised
    images = model.images
    np.testing.assert_allclose(images.inputs, data[2])                      # the network gets its own inputs
    np.testing.assert_allclose(images.raw, d.X_val, atol=1e-5)              # the learner sees the digits
    assert images.pixel_range == pytest.approx((0.0, 1.0), abs=1e-5)                # raw digits / 16 span 0..1
    model.set_index(7)
    np.testing.assert_allclose(model.current_raw, d.X_val[7], atol=1e-5)
    np.testing.assert_array_equal(model.current_input, data[2][7])
    # raw grey 0.5 in input units is (0.5 - mean) / std, pixel by pixel
    np.testing.assert_allclose(images.to_input(0.5), (0.5 - stats.mean) / stats.std.reshape(-1, 1, 1))
    assert images.scale_to_input(0.1) == pytest.approx(np.full((1, 8, 8), 0.1 / stats.std[0]))
    assert model.accuracy > 0.9


def test_quick_views_equal_the_simulator_functions(model):
    net = model.network
    model.set_index(11)
    x = model.current_input
    v = model.saliency(SaliencySettings("class 3"))
    assert v.cls == 3
    np.testing.assert_allclose(v.saliency, I.saliency_map(net, x[None], 3)[0])
    np.testing.assert_allclose(v.probs, I.softmax(net.forward(x[None], "eval"))[0])
    v = model.saliency(SaliencySettings("true class"))
    assert v.cls == model.current_label


def test_occlusion_fills_grey_in_raw_units(model):
    s = OcclusionSettings(patch=3, stride=2, fill=0.5)
    v = model.occlusion(s)
    assert v.fill == pytest.approx(0.5)
    patch = v.occluded[:, v.top:v.top + 3, v.left:v.left + 3]
    np.testing.assert_allclose(patch, 0.5, atol=1e-5)                     # grey on screen, whatever the mean image
    # the drop of the worst patch, recomputed directly in input space
    x = model.current_input.astype(np.float64)
    occ = x.copy()
    occ[:, v.top:v.top + 3, v.left:v.left + 3] = model.images.to_input(0.5)[:, v.top:v.top + 3, v.left:v.left + 3]
    y = model.current_label
    p0 = I.softmax(model.network.forward(x[None], "eval"))[0, y]
    p1 = I.softmax(model.network.forward(occ[None], "eval"))[0, y]
    assert v.result.drops.max() == pytest.approx(p0 - p1, rel=1e-4, abs=1e-6)


def test_attack_epsilon_is_a_fraction_of_the_raw_pixel_range(model):
    model.set_index(3)
    v = model.attack(AttackSettings(eps=0.2))
    d = v.perturbed - v.image
    assert np.abs(d).max() == pytest.approx(0.2, rel=1e-4)
    assert v.perturbed.min() >= -1e-5 and v.perturbed.max() <= 1 + 1e-5    # clipped to the raw pixel range
    zero = model.attack(AttackSettings(eps=0.0))
    np.testing.assert_allclose(zero.perturbed, zero.image, atol=1e-5)
    assert zero.predictions[0] == zero.predictions[1]


def test_robustness_curve_starts_at_the_clean_accuracy(model):
    curves = []
    final = run_job(model.robustness(AttackSettings(), n=100), on_yield=curves.append)
    assert len(final.eps) == 21 and final.eps[0] == 0 and final.eps[-1] == pytest.approx(0.5)
    clean = float(np.mean(model.network.predict(model.images.inputs[:100]) == model.images.labels[:100]))
    assert final.accuracy[0] == pytest.approx(clean)
    assert final.accuracy[-1] < 0.3 * clean
    assert [len(c.eps) for c in curves] == list(range(1, 22))


def test_class_visualisation_job_yields_raw_frames_and_can_be_closed(model):
    s = ClassVisSettings(cls=4, steps=30, lr=0.05, l2_reg=0.05, blur_every=0)
    frames = []
    out = run_job(model.class_visualisation(s), on_yield=frames.append)
    r = out[4]
    assert len(r.scores) == 31 and r.scores[-1] > r.scores[0]
    assert frames[-1].finished.keys() == {4} and len(frames[-1].scores) == 31
    lo, hi = model.images.pixel_range
    assert all(lo - 1e-5 <= f.image.min() and f.image.max() <= hi + 1e-5 for f in frames[1:])
    job = model.class_visualisation(s, all_classes=True)
    next(job)
    job.close()                                              # cancelling: nothing more runs
    with pytest.raises(StopIteration):
        next(job)


def test_embedding_job_pca_equals_the_closed_form(model):
    method, F, Y = run_job(model.embedding_job(EmbeddingSettings("PCA")))
    assert method == "PCA" and Y.shape == (len(model.images), 2)
    np.testing.assert_allclose(F, I.hidden_features(model.network, model.images.inputs))
    # principal components: the projections are uncorrelated and their variances are the two largest eigenvalues
    C = np.cov((F - F.mean(0)).T, bias=True)
    ev = np.sort(np.linalg.eigvalsh(C))[::-1]
    np.testing.assert_allclose(Y.var(axis=0), ev[:2], rtol=1e-6)
    assert abs(np.corrcoef(Y.T)[0, 1]) < 1e-8
    model.set_embedding(method, F, Y)
    model.select_point(5)
    nn_f, nn_p = model.neighbours(4)
    np.testing.assert_array_equal(nn_p, I.nearest_neighbours(model.images.raw, 5, 4))


def test_quick_training_is_a_job_with_progress():
    m = InterpretLabModel()
    seen = []
    quick = run_job(m.training(QuickModelSettings(epochs=2)), on_yield=seen.append)
    assert all(isinstance(p, Progress) for p in seen) and seen[-1].done == seen[-1].total > 0
    m.set_quick_model(quick)
    assert m.images.standardizer is None and m.accuracy == pytest.approx(quick.val_accuracy)


def test_bad_input_is_refused_and_leaves_the_model_as_it_was(model, standardised):
    net, d, stats, data = standardised
    before = (model.network, model.images, model.index)
    with pytest.raises(ShapeError, match="image model"):
        model.set_network(Network((2,), [Linear(3)]), (np.zeros((4, 2)), np.zeros(4, int), None, None))
    with pytest.raises(ShapeError, match="standardiser"):
        model.set_network(net, data, standardize(np.zeros((3, 2)))[0])
    with pytest.raises(ValueInputError, match="validation image"):
        model.set_index(10_000)
    assert (model.network, model.images, model.index) == before
    # occlusion with no class: the learner is told to choose one
    with pytest.raises(ValueInputError, match="choose a class"):
        I.occlusion_map(net, data[2][0], None)
    # class visualisation with a NaN step size: refused before any step (it used to return NaN images)
    with pytest.raises(ValueInputError, match="step size must be a finite number"):
        I.class_visualisation(net, 3, steps=5, lr=math.nan)
    with pytest.raises(ValueInputError, match="step size"):
        ClassVisSettings(lr=float("nan"))
    with pytest.raises(ValueInputError, match="patch size"):
        model.occlusion(OcclusionSettings(patch=9))
    # a grid over a space without one of its keys, a random search with a NaN trial count
    with pytest.raises(ValueInputError, match="no range for 'weight_decay'"):
        grid_search({"lr": (1e-4, 1e-1)}, 3)
    with pytest.raises(ValueInputError, match="number of trials must be a whole number"):
        random_search({"lr": (1e-4, 1e-1), "weight_decay": (1e-5, 1e-2)}, math.nan)
    with pytest.raises(ValueInputError, match="eps"):
        I.fgsm(net, data[2][:2], data[3][:2], math.inf)
    with pytest.raises(ValueInputError, match="k must be"):
        I.nearest_neighbours(np.zeros((5, 2)), 0, -1)
    with pytest.raises(ValueInputError, match="embedding method"):
        I.embed(None, None, "umap", features=np.zeros((5, 3)))
    with pytest.raises(ValueInputError, match="no model yet"):
        InterpretLabModel().saliency(SaliencySettings())


def test_image_set_from_raw_tuples_takes_the_raw_range():
    X = np.random.default_rng(0).uniform(-2, 3, (10, 1, 4, 4))
    s = ImageSet.from_data((X, np.zeros(10, int), None, None))
    assert s.standardizer is None and s.pixel_range == (pytest.approx(X.min()), pytest.approx(X.max()))
    assert len(s) == 10
    with pytest.raises(ValueInputError, match="X_train"):
        ImageSet.from_data(42)
    with pytest.raises(ShapeError, match="images"):
        ImageSet.from_data((np.zeros((3, 4)), np.zeros(3, int), None, None))
    net = Network((1, 4, 4), [Flatten(), Linear(10)], seed=0)
    m = InterpretLabModel()
    with pytest.raises(ValueInputError, match="labels"):
        m.set_network(net, (X, np.full(10, 12), None, None))
    assert m.network is None
