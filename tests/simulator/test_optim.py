"""Optimizers: hand-computed first steps, a plain-Python float64 reference over 1,000 steps, torch.optim over 100."""
from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.functional.optim import OPTIMIZERS, SGD, AdaGrad, Adam, AdamW, RMSProp, make_optimizer


def run_on_square(opt_factory, steps, p0=1.0):
    """Minimise f(p) = p^2 (gradient 2p) from p0; returns p after each of the first ``steps`` updates."""
    p = np.array([p0])
    opt = opt_factory([p])
    out = []
    for _ in range(steps):
        opt.step([2.0 * p])
        out.append(float(p[0]))
    return out


# ------------------------------------------------------------------------------------------ hand-computed steps
def test_sgd_by_hand():
    # p1 = 1 - 0.1*2 = 0.8, p2 = 0.8 - 0.1*1.6 = 0.64, p3 = 0.64 - 0.1*1.28 = 0.512
    assert run_on_square(lambda ps: SGD(ps, lr=0.1), 3) == pytest.approx([0.8, 0.64, 0.512], abs=1e-15)


def test_sgd_weight_decay_by_hand():
    # g' = 2p + 0.5p = 2.5p: p1 = 1 - 0.25 = 0.75, p2 = 0.75 * 0.75 = 0.5625
    assert run_on_square(lambda ps: SGD(ps, lr=0.1, weight_decay=0.5), 2) == pytest.approx([0.75, 0.5625], abs=1e-15)


def test_momentum_by_hand():
    # step 1: g=2, b=2 (b <- g), p=1-0.2=0.8
    # step 2: g=1.6, b=0.9*2+1.6=3.4, p=0.8-0.34=0.46
    # step 3: g=0.92, b=0.9*3.4+0.92=3.98, p=0.46-0.398=0.062
    got = run_on_square(lambda ps: SGD(ps, lr=0.1, momentum=0.9), 3)
    assert got == pytest.approx([0.8, 0.46, 0.062], abs=1e-14)


def test_nesterov_by_hand():
    # step 1: g=2, b=2, d=g+0.9b=3.8, p=1-0.38=0.62
    # step 2: g=1.24, b=0.9*2+1.24=3.04, d=1.24+0.9*3.04=3.976, p=0.62-0.3976=0.2224
    got = run_on_square(lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True), 2)
    assert got == pytest.approx([0.62, 0.2224], abs=1e-14)


def test_adagrad_by_hand():
    # step 1: g=2, s=4, p = 1 - 0.1*2/(2+1e-10) = 0.9 (to 1e-11)
    # step 2: g=1.8, s=4+3.24=7.24, p = 0.9 - 0.1*1.8/sqrt(7.24) = 0.9 - 0.0668964... = 0.8331035...
    got = run_on_square(lambda ps: AdaGrad(ps, lr=0.1), 2)
    assert got == pytest.approx([0.9, 0.9 - 0.18 / math.sqrt(7.24)], abs=1e-10)
    assert got[1] == pytest.approx(0.833103, abs=1e-6)


def test_rmsprop_by_hand():
    # step 1: g=2, v=0.01*4=0.04, p = 1 - 0.01*2/0.2 = 0.9
    # step 2: g=1.8, v=0.99*0.04+0.01*3.24=0.072, p = 0.9 - 0.01*1.8/sqrt(0.072) = 0.8329179...
    got = run_on_square(lambda ps: RMSProp(ps, lr=0.01), 2)
    assert got == pytest.approx([0.9, 0.9 - 0.018 / math.sqrt(0.072)], abs=1e-7)
    assert got[1] == pytest.approx(0.832918, abs=1e-6)


def test_adam_by_hand():
    # step 1: g=2, m=0.2, v=0.004; m^=2, v^=4: p = 1 - 0.1*2/2 = 0.9
    # step 2: g=1.8, m=0.18+0.18=0.36, v=0.003996+0.00324=0.007236; m^=0.36/0.19, v^=0.007236/0.001999
    #         p = 0.9 - 0.1*1.8947368/1.9025799 = 0.8004122...
    got = run_on_square(lambda ps: Adam(ps, lr=0.1), 2)
    m_hat, v_hat = 0.36 / 0.19, 0.007236 / 0.001999
    assert got == pytest.approx([0.9, 0.9 - 0.1 * m_hat / math.sqrt(v_hat)], abs=1e-7)
    assert got[1] == pytest.approx(0.800412, abs=1e-6)


def test_adam_l2_versus_adamw_decoupled_by_hand():
    # Adam, L2 0.1: g' = 2.1 at p=1; first step is -lr*sign: p = 0.9. Step 2: g' = 1.8 + 0.09 = 1.89.
    # AdamW, wd 0.1: p = 1*(1 - 0.1*0.1) = 0.99 first, then -0.1: p = 0.89.
    adam = run_on_square(lambda ps: Adam(ps, lr=0.1, weight_decay=0.1), 2)
    m = 0.9 * 0.21 + 0.1 * 1.89
    v = 0.999 * 0.001 * 2.1**2 + 0.001 * 1.89**2
    assert adam[0] == pytest.approx(0.9, abs=1e-7)
    assert adam[1] == pytest.approx(0.9 - 0.1 * (m / 0.19) / math.sqrt(v / (1 - 0.999**2)), abs=1e-7)
    adamw = run_on_square(lambda ps: AdamW(ps, lr=0.1, weight_decay=0.1), 1)
    assert adamw[0] == pytest.approx(0.89, abs=1e-7)


# ------------------------------------------------------------------------------- plain-Python float64 reference
def reference_step(kind, p, g, st, hp):
    """One update of a list of floats, written from torch.optim's documented algorithms, element by element."""
    lr, wd = hp["lr"], hp.get("weight_decay", 0.0)
    st["step"] = st.get("step", 0) + 1
    t = st["step"]
    for i in range(len(p)):
        gi = g[i]
        if kind == "AdamW":
            p[i] = p[i] * (1 - lr * wd)
        else:
            gi = gi + wd * p[i]
        if kind == "SGD":
            mu = hp.get("momentum", 0.0)
            if mu:
                b = st.setdefault("b", [0.0] * len(p))
                b[i] = gi if t == 1 else mu * b[i] + gi
                d = gi + mu * b[i] if hp.get("nesterov") else b[i]
            else:
                d = gi
            p[i] = p[i] - lr * d
        elif kind == "AdaGrad":
            s = st.setdefault("s", [0.0] * len(p))
            s[i] = s[i] + gi * gi
            p[i] = p[i] - lr * gi / (math.sqrt(s[i]) + hp["eps"])
        elif kind == "RMSProp":
            a, mu = hp["alpha"], hp.get("momentum", 0.0)
            sq = st.setdefault("sq", [0.0] * len(p))
            ga = st.setdefault("ga", [0.0] * len(p))
            b = st.setdefault("b", [0.0] * len(p))
            sq[i] = a * sq[i] + (1 - a) * gi * gi
            if hp.get("centered"):
                ga[i] = a * ga[i] + (1 - a) * gi
                avg = math.sqrt(sq[i] - ga[i] * ga[i]) + hp["eps"]
            else:
                avg = math.sqrt(sq[i]) + hp["eps"]
            if mu > 0:
                b[i] = mu * b[i] + gi / avg
                p[i] = p[i] - lr * b[i]
            else:
                p[i] = p[i] - lr * gi / avg
        else:  # Adam, AdamW
            b1, b2 = hp["betas"]
            m = st.setdefault("m", [0.0] * len(p))
            v = st.setdefault("v", [0.0] * len(p))
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            step_size = lr / (1 - b1**t)
            denom = math.sqrt(v[i]) / math.sqrt(1 - b2**t) + hp["eps"]
            p[i] = p[i] - step_size * m[i] / denom


def gradient(p, t):
    """A gradient that depends on the point and the step: an anisotropic quadratic plus a wobble."""
    scales = np.array([1.0, 3.0, 0.5, 10.0, 0.1, 2.0])[: p.size]
    return scales * p + 0.3 * np.sin(0.01 * t + np.arange(p.size))


CASES = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.02, "momentum": 0.9}),
    ("SGD", {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.02, "momentum": 0.8, "nesterov": True}),
    ("SGD", {"lr": 0.02, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    ("AdaGrad", {"lr": 0.1, "eps": 1e-10}),
    ("AdaGrad", {"lr": 0.1, "eps": 1e-10, "weight_decay": 0.01}),
    ("RMSProp", {"lr": 0.01, "alpha": 0.99, "eps": 1e-8}),
    ("RMSProp", {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "momentum": 0.9, "weight_decay": 0.01}),
    ("RMSProp", {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "centered": True}),
    ("RMSProp", {"lr": 0.005, "alpha": 0.95, "eps": 1e-8, "momentum": 0.5, "centered": True}),
    ("Adam", {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.05}),
    ("AdamW", {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.05}),
    ("AdamW", {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}),
]
CLASSES = {"SGD": SGD, "AdaGrad": AdaGrad, "RMSProp": RMSProp, "Adam": Adam, "AdamW": AdamW}


@pytest.mark.parametrize("kind,hp", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_matches_plain_python_reference_over_1000_steps(kind, hp):
    p0 = np.array([1.0, -2.0, 0.5, 0.3, -4.0])
    p = p0.copy()
    opt = CLASSES[kind]([p], **hp)
    ref = list(p0)
    st: dict = {}
    for t in range(1000):
        g = gradient(p, t)
        opt.step([g])
        reference_step(kind, ref, list(g), st, hp)
    np.testing.assert_allclose(p, ref, rtol=1e-12, atol=1e-12)
    assert opt.state[0]["step"] == 1000
    assert np.abs(p - p0).max() > 0.1  # it moved


@pytest.mark.parametrize("kind,hp", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_torch_over_100_steps(kind, hp, dtype):
    torch = pytest.importorskip("torch")
    torch_cls = {"SGD": torch.optim.SGD, "AdaGrad": torch.optim.Adagrad, "RMSProp": torch.optim.RMSprop,
                 "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[kind]
    np_dtype = np.dtype(dtype)
    p = np.array([[1.0, -2.0, 0.5], [0.3, -4.0, 2.0]], dtype=np_dtype)
    tp = torch.tensor(p.copy(), requires_grad=True)
    opt = CLASSES[kind]([p], **hp)
    topt = torch_cls([tp], **hp)
    for t in range(100):
        g = (gradient(p.reshape(-1).astype(np.float64), t).reshape(2, 3)).astype(np_dtype)
        opt.step([g])
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    tol = 1e-10 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=tol, atol=tol)
    names = {"SGD": "momentum_buffer", "AdaGrad": "sum", "RMSProp": "square_avg", "Adam": "exp_avg_sq",
             "AdamW": "exp_avg"}
    key = names[kind]
    if key in opt.state[0]:
        np.testing.assert_allclose(opt.state[0][key], topt.state[tp][key].numpy(), rtol=tol * 10, atol=tol)


# ------------------------------------------------------------------------------------------- API and validation
def test_state_is_readable_and_shaped_like_params():
    w, b = np.ones((3, 2)), np.zeros(2)
    opt = Adam([w, b], lr=0.1)
    assert opt.state[0]["step"] == 0 and opt.state[0]["exp_avg"].shape == (3, 2)
    opt.step([np.full((3, 2), 2.0), np.ones(2)])
    np.testing.assert_allclose(opt.state[0]["exp_avg"], 0.2)
    np.testing.assert_allclose(opt.state[1]["exp_avg_sq"], 0.001)
    np.testing.assert_allclose(w, 0.9)
    assert [s["step"] for s in opt.state] == [1, 1]
    opt.reset_state()
    assert opt.state[0]["step"] == 0 and not opt.state[0]["exp_avg"].any()


def test_lr_can_change_between_steps():
    p = np.array([1.0])
    opt = SGD([p], lr=0.1)
    opt.step([np.array([1.0])])
    opt.lr = 0.5
    opt.step([np.array([1.0])])
    assert p[0] == pytest.approx(1.0 - 0.1 - 0.5)
    with pytest.raises(ValueInputError):
        opt.lr = -1.0


def test_float32_params_stay_float32_and_non_contiguous_params_update_in_place():
    base = np.ones((4, 4), dtype=np.float32)
    view = base[:, ::2]  # not contiguous
    opt = SGD([view], lr=0.5)
    opt.step([np.ones((4, 2))])  # float64 grads are cast to the param's dtype
    assert view.dtype == np.float32
    np.testing.assert_array_equal(base[:, ::2], 0.5)
    np.testing.assert_array_equal(base[:, 1::2], 1.0)


def test_grad_shape_mismatch_names_both_shapes():
    opt = SGD([np.zeros((2, 3))], lr=0.1)
    with pytest.raises(ShapeError, match=r"\(3, 2\).*\(2, 3\)"):
        opt.step([np.zeros((3, 2))])
    with pytest.raises(ValueInputError):
        opt.step([np.zeros((2, 3)), np.zeros(1)])


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=-0.1),
    lambda ps: SGD(ps, lr=float("nan")),
    lambda ps: SGD(ps, lr=0.1, momentum=-0.5),
    lambda ps: SGD(ps, lr=0.1, nesterov=True),
    lambda ps: SGD(ps, lr=0.1, weight_decay=-1.0),
    lambda ps: AdaGrad(ps, eps=0.0),
    lambda ps: RMSProp(ps, alpha=1.5),
    lambda ps: RMSProp(ps, eps=-1e-8),
    lambda ps: Adam(ps, betas=(1.0, 0.999)),
    lambda ps: Adam(ps, betas=(0.9, -0.1)),
    lambda ps: Adam(ps, betas=(0.9,)),
    lambda ps: Adam(ps, eps=float("inf")),
    lambda ps: AdamW(ps, weight_decay=float("nan")),
    lambda ps: Adam(ps, lr="fast"),
])
def test_bad_hyperparameters_raise(make):
    with pytest.raises(ValueInputError):
        make([np.zeros(2)])


@pytest.mark.parametrize("params", [[], [np.zeros(2, dtype=np.int64)], [[1.0, 2.0]]])
def test_bad_params_raise(params):
    with pytest.raises(ValueInputError):
        SGD(params, lr=0.1)


def test_registry_builds_every_entry_with_defaults_and_overrides():
    assert list(OPTIMIZERS) == ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW"]
    for name, info in OPTIMIZERS.items():
        opt = make_optimizer(name, [np.ones(3)])
        for key, value in info.defaults.items():
            assert opt.hyperparameters()[key] == value
        opt.step([np.ones(3)])
    assert make_optimizer("Nesterov", [np.ones(1)]).nesterov
    assert make_optimizer("Momentum", [np.ones(1)], lr=0.5).lr == 0.5
    assert isinstance(make_optimizer("AdamW", [np.ones(1)]), AdamW)
    with pytest.raises(ValueInputError):
        make_optimizer("LBFGS", [np.ones(1)])


# ------------------------------------------------------------------------------------------------ declarations
def test_each_entry_declares_its_hyperparameters_once():
    from simulator.functional.optim import HYPERPARAMETERS
    names = {name: info.param_names for name, info in OPTIMIZERS.items()}
    assert names == {"SGD": ("lr", "weight_decay"), "Momentum": ("lr", "momentum", "weight_decay"),
                     "Nesterov": ("lr", "momentum", "weight_decay"), "AdaGrad": ("lr", "eps", "weight_decay"),
                     "RMSProp": ("lr", "alpha", "eps", "momentum", "weight_decay", "centered"),
                     "Adam": ("lr", "beta1", "beta2", "eps", "weight_decay"),
                     "AdamW": ("lr", "beta1", "beta2", "eps", "weight_decay")}
    lrs = {name: info.params[0].default for name, info in OPTIMIZERS.items()}
    assert lrs == {"SGD": 0.1, "Momentum": 0.05, "Nesterov": 0.05, "AdaGrad": 0.05, "RMSProp": 0.005, "Adam": 0.01,
                   "AdamW": 0.01}
    for info in OPTIMIZERS.values():
        for p in info.params:
            assert p.doc and p.label and p.check(p.default) == p.default
            shared = HYPERPARAMETERS[p.name]        # one declaration; entries only change the default
            assert (p.low, p.high, p.label, p.doc) == (shared.low, shared.high, shared.label, shared.doc)
    # torch.optim's defaults for everything but lr
    assert OPTIMIZERS["RMSProp"].settings().as_dict() == dict(lr=0.005, alpha=0.99, eps=1e-8, momentum=0.0,
                                                              weight_decay=0.0, centered=False)
    assert OPTIMIZERS["AdamW"].defaults == dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    assert OPTIMIZERS["AdaGrad"].settings().eps == 1e-10


def test_betas_are_packed_and_split_in_one_place():
    info = OPTIMIZERS["Adam"]
    assert info.kwargs({"beta1": 0.8}) == dict(lr=0.01, betas=(0.8, 0.999), eps=1e-8, weight_decay=0.0)
    assert info.values(betas=(0.5, 0.6))["beta2"] == 0.6
    assert make_optimizer("Adam", [np.zeros(1)], beta2=0.9).betas == (0.9, 0.9)
    assert info.create([np.zeros(1)], info.settings(beta1=0.1), betas=(0.2, 0.3)).betas == (0.2, 0.3)
    with pytest.raises(ValueInputError, match=r"betas must be a pair of numbers \(beta1, beta2\), got 0.9"):
        info.values(betas=0.9)


def test_a_built_optimizer_rebuilds_from_its_hyperparameters():
    for name in OPTIMIZERS:
        opt = make_optimizer(name, [np.zeros(2)])
        assert repr(make_optimizer(name, [np.zeros(2)], **opt.hyperparameters())) == repr(opt)


@pytest.mark.parametrize("make, message", [
    (lambda ps: SGD(ps, lr=-0.1), "learning rate must be ≥ 0, got -0.1"),
    (lambda ps: SGD(ps, lr=float("nan")), "learning rate must be a finite number"),
    (lambda ps: SGD(ps, lr=0.1, momentum=1.5), "momentum must be ≤ 1, got 1.5"),
    (lambda ps: SGD(ps, lr=0.1, nesterov=True), "Nesterov momentum requires a momentum > 0"),
    (lambda ps: RMSProp(ps, alpha=-0.5), "alpha must be ≥ 0"),
    (lambda ps: RMSProp(ps, centered="yes"), "centered must be true or false"),
    (lambda ps: AdaGrad(ps, eps=0.0), "eps must be > 0, got 0"),
    (lambda ps: Adam(ps, betas=(1.0, 0.999)), "beta1 must be < 1, got 1"),
    (lambda ps: AdamW(ps, weight_decay=2.0), "weight decay must be ≤ 1, got 2"),
    (lambda ps: make_optimizer("SGD", ps, momentum=0.9), "SGD always has momentum=0.0"),
    (lambda ps: make_optimizer("Adam", ps, alpha=0.9), "Adam has no hyperparameter 'alpha'"),
    (lambda ps: make_optimizer(["Adam"], ps), "unknown optimizer"),
])
def test_bad_hyperparameters_say_what_is_wrong(make, message):
    with pytest.raises(ValueInputError, match=message):
        make([np.zeros(2)])
