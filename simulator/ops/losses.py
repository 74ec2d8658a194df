"""Loss ops: multiclass SVM (hinge, margin 1), softmax cross-entropy, mean squared error, L1 and L2 penalties, and
the contrastive InfoNCE / NT-Xent loss (SimCLR) over a batch of embeddings.

Classification losses take scores (N, C) with integer labels y (N,), or one example's scores (C,) with a scalar
label, and return the mean loss over the batch. Softmax cross-entropy also takes probability targets of the scores'
shape (soft labels: mixup, CutMix) and a ``label_smoothing`` eps. Labels get no gradient. Labels arrive as float64
graph values and are checked here to be whole numbers in range (probability targets: rows of non-negative numbers
summing to 1); the arithmetic is simulator/functional/layers.py over the Numba kernels.
"""
from __future__ import annotations

import numpy as np

from simulator.functional import layers as L
from simulator.core.errors import ShapeError, ValueInputError
from simulator.ops.registry import ELEMENTWISE_SHAPES, AttrSpec, OpSpec, away_from, register, same_shape, shape_str


def classification_shape(op, soft=False):
    def rule(ss, sy, **_attrs):
        if len(ss) == 2 and tuple(sy) == (ss[0],) or len(ss) == 1 and tuple(sy) == ():
            return ()
        if soft and len(ss) in (1, 2) and tuple(sy) == tuple(ss):
            return ()
        also = ", or probability targets y of the scores' shape" if soft else ""
        raise ShapeError(f"{op}: scores have shape {shape_str(ss)} and labels y have shape {shape_str(sy)}; "
                         f"expected scores (N, C) with y (N,), or scores (C,) with a scalar y{also}")
    return rule


def as_batch(op, scores, y):
    """Scores as (N, C) and labels as int (N,), checked to be whole numbers in [0, C)."""
    s2 = np.atleast_2d(scores)
    y1 = np.atleast_1d(np.asarray(y))
    if y1.size and (not np.all(np.isfinite(y1)) or np.any(y1 != np.round(y1))):
        raise ValueInputError(f"{op}: labels must be whole numbers, got {y1.tolist()}")
    labels = y1.astype(np.int64)
    c = s2.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        raise ValueInputError(f"{op}: labels must lie in 0..{c - 1} for {c} classes, got {labels.tolist()}")
    return s2, labels


def _classification(op, layer_loss, soft=False):
    """forward/backward for a classification loss over simulator/layers.py (float64). The layer returns the loss and
    d loss / d scores together; the cache keeps that gradient, and backward scales it by the upstream gradient.
    ``soft``: y of the scores' shape is a probability target (checked by the layer), and attributes (the label
    smoothing) are passed on."""
    def forward(scores, y, **attrs):
        scores64 = np.asarray(scores, dtype=np.float64)
        if soft and np.ndim(scores) in (1, 2) and np.shape(y) == np.shape(scores):
            loss, dscores = layer_loss(np.atleast_2d(scores64), np.atleast_2d(np.asarray(y, np.float64)), **attrs)
        else:
            s, labels = as_batch(op, scores64, y)
            loss, dscores = layer_loss(s, labels, **attrs)
        return np.float64(loss), (dscores, np.shape(scores))

    def backward(dout, cache):
        dscores, shape = cache
        return (dout * dscores).reshape(shape), None
    return forward, backward


svm_loss_forward, svm_loss_backward = _classification("svm_loss", L.svm_loss)
softmax_ce_forward, softmax_ce_backward = _classification("softmax_ce", L.softmax_loss, soft=True)


def _svm_samples(rng):
    """Scores whose margins s_j - s_y + 1 stay at least 0.1 from the hinge."""
    out = []
    for n, c in ((1, 3), (4, 3), (5, 6)):
        while True:
            s = rng.normal(scale=1.5, size=(n, c))
            y = rng.integers(0, c, size=n)
            m = s - s[np.arange(n), y][:, None] + 1.0
            m[np.arange(n), y] = 1.0
            if np.min(np.abs(m)) > 0.1:
                break
        out.append(((s, y.astype(np.float64)), {}))
    out.append(((np.array([3.2, 5.1, -1.7]), np.array(0.0)), {}))
    return out


def _ce_samples(rng):
    out = [((rng.normal(size=(n, c)), rng.integers(0, c, size=n).astype(np.float64)), {})
           for n, c in ((1, 3), (4, 3), (5, 10))]
    out.append(((np.array([3.2, 5.1, -1.7]), np.array(0.0)), {}))
    out.append(((rng.normal(size=(4, 3)), rng.integers(0, 3, size=4).astype(np.float64)), {"label_smoothing": 0.1}))
    for n, c in ((4, 3), (2, 5)):                          # probability targets (soft labels)
        t = rng.random((n, c))
        out.append(((rng.normal(size=(n, c)), t / t.sum(axis=1, keepdims=True)), {}))
    t = rng.random(4)
    out.append(((rng.normal(size=4), t / t.sum()), {"label_smoothing": 0.2}))
    return out


register(OpSpec(
    name="svm_loss", family="loss", inputs=("scores", "y"), forward=svm_loss_forward, backward=svm_loss_backward,
    infer_shape=classification_shape("svm_loss"), symbol="SVM", formula="(1/N) Σᵢ Σ_{j≠yᵢ} max(0, sⱼ − s_yᵢ + 1)",
    local_grad={"scores": "1[margin > 0] for j ≠ y; −(number of positive margins) for j = y; all / N"},
    doc="Multiclass SVM (hinge) loss: every wrong class should score at least 1 below the correct one.",
    sample=_svm_samples, nondiff=frozenset({"y"})))

register(OpSpec(
    name="softmax_ce", family="loss", inputs=("scores", "y"), forward=softmax_ce_forward,
    backward=softmax_ce_backward, infer_shape=classification_shape("softmax_ce", soft=True), symbol="CE",
    formula="(1/N) Σᵢ −log(e^{s_yᵢ} / Σⱼ e^{sⱼ});  soft targets t: (1/N) Σᵢ Σⱼ −tᵢⱼ log softmax(sᵢ)ⱼ",
    local_grad={"scores": "(softmax(s) − t) / N, t = onehot(y) or the probability target, smoothed by ε"},
    doc="Softmax cross-entropy: the negative log-probability the softmax gives the correct class. y is an integer "
        "label per example or a probability row per example (soft labels); label_smoothing ε mixes the target with "
        "the uniform distribution: t ← (1 − ε) t + ε / C.",
    sample=_ce_samples, nondiff=frozenset({"y"}),
    attrs=(AttrSpec("label_smoothing", 0.0, "float", "label smoothing ε in [0, 1): the correct class gets "
                    "1 − (C − 1)/C · ε, the others ε / C", minimum=0.0),)))


def infonce_shape(sz, sy, temperature=0.5):
    if len(sz) == 2 and sz[0] >= 2 and tuple(sy) == (sz[0],):
        return ()
    raise ShapeError(f"infonce: embeddings z have shape {shape_str(sz)} and partners y have shape {shape_str(sy)}; "
                     f"expected z (2N, D) with at least two rows and y (2N,): for each row, the index of the row "
                     f"holding the other view of its image")


def infonce_op_forward(z, y, temperature=0.5):
    """z (2N, D); y (2N,) partner indices as float64 graph values (checked to be whole numbers)."""
    y1 = np.asarray(y)
    if y1.size and (not np.all(np.isfinite(y1)) or np.any(y1 != np.round(y1))):
        raise ValueInputError(f"infonce: partner indices must be whole numbers, got {y1.tolist()}")
    loss, cache = L.infonce_forward(np.asarray(z, dtype=np.float64), y1.astype(np.int64), temperature)
    return np.float64(loss), cache


def infonce_op_backward(dout, cache):
    return L.infonce_backward(dout, cache), None


def _infonce_samples(rng):
    out = []
    for m, d, tau in ((4, 3, 0.5), (6, 5, 0.2), (8, 2, 1.0)):
        out.append(((rng.normal(size=(m, d)), L.default_partners(m).astype(np.float64)), {"temperature": tau}))
    out.append(((rng.normal(size=(5, 4)), np.array([1.0, 2.0, 3.0, 4.0, 0.0])), {"temperature": 0.5}))  # a cycle
    return out


register(OpSpec(
    name="infonce", family="loss", inputs=("z", "y"), forward=infonce_op_forward, backward=infonce_op_backward,
    infer_shape=infonce_shape, symbol="NCE τ={temperature}",
    formula="(1/2N) Σᵢ −log( e^{cos(zᵢ, z_yᵢ)/τ} / Σ_{k≠i} e^{cos(zᵢ, z_k)/τ} )",
    local_grad={"z": "dS = (P − onehot(y)) / 2N (P: the softmax over k ≠ i); dû = (dS + dSᵀ) û / τ; "
                     "dz = (dû − û (û·dû)) / ‖z‖"},
    doc="InfoNCE / NT-Xent (SimCLR's contrastive loss): each row of z is L2-normalised, its cosine similarities to "
        "every other row, divided by the temperature τ, are scores, and the correct 'class' is the row y holding "
        "the other view of the same image (softmax cross-entropy over the other rows). A small τ sharpens the "
        "softmax: hard negatives weigh more.",
    sample=_infonce_samples, nondiff=frozenset({"y"}),
    attrs=(AttrSpec("temperature", 0.5, "float", "the temperature τ > 0 dividing the cosine similarities",
                    minimum=1e-6),)))


def mse_shape(sp, st):
    same_shape("mse", "pred", "target")(sp, st)
    return ()


def mse_forward(pred, target):
    diff = pred - target
    return np.mean(diff * diff), (diff, max(diff.size, 1))


def mse_backward(dout, cache):
    diff, n = cache
    g = dout * 2.0 * diff / n
    return g, -g


register(OpSpec(
    name="mse", family="loss", inputs=("pred", "target"), forward=mse_forward, backward=mse_backward,
    infer_shape=mse_shape, symbol="MSE",
    formula="(1/n) Σ (pred − target)²", local_grad={"pred": "2(pred − target)/n", "target": "−2(pred − target)/n"},
    doc="Mean squared error over all entries, the regression loss.",
    sample=lambda rng: [((rng.normal(size=s), rng.normal(size=s)), {}) for s in ELEMENTWISE_SHAPES]))


def l1_forward(w, strength=1.0):
    return strength * np.sum(np.abs(w)), (w, strength)


def l1_backward(dout, cache):
    w, strength = cache
    return (dout * strength * np.sign(w),)


def l2_forward(w, strength=1.0):
    return strength * np.sum(w * w), (w, strength)


def l2_backward(dout, cache):
    w, strength = cache
    return (dout * 2.0 * strength * w,)


_STRENGTH = AttrSpec("strength", 1.0, "float", "the regularisation strength λ", minimum=0.0)


def _penalty_samples(rng):
    return [((away_from(rng, s),), {"strength": lam}) for s in ELEMENTWISE_SHAPES for lam in (1.0, 0.05)]


register(OpSpec(
    name="l1", family="loss", inputs=("w",), forward=l1_forward, backward=l1_backward,
    infer_shape=lambda sw, strength=1.0: (), symbol="L1", formula="λ Σ |w|", local_grad={"w": "λ sign(w)"},
    doc="L1 penalty: pushes weights to exactly zero (sparse weights).", sample=_penalty_samples,
    attrs=(_STRENGTH,)))

register(OpSpec(
    name="l2", family="loss", inputs=("w",), forward=l2_forward, backward=l2_backward,
    infer_shape=lambda sw, strength=1.0: (), symbol="L2", formula="λ Σ w²", local_grad={"w": "2λw"},
    doc="L2 penalty (weight decay's cousin): prefers many small weights over a few large ones.",
    sample=_penalty_samples, attrs=(_STRENGTH,)))
