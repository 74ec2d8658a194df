"""Numba kernels for fused, in-place optimizer updates (torch.optim's single-tensor arithmetic), float32 and float64.

Every kernel takes flat C-contiguous arrays (call it on ``p.reshape(-1)`` views) and Python scalars, and updates the
parameter and its state arrays in place in one pass. The arithmetic is torch.optim's documented algorithm, in the
order its single-tensor code evaluates it:

- Scalar coefficients (``1 - beta``, bias corrections, ``lr / bias_correction1``, ``1 - lr * wd``) are computed in
  float64, as torch computes them in Python, and then rounded to the parameter's dtype, as torch rounds a Python scalar
  when it meets a float32 tensor. Element arithmetic then stays in the parameter's dtype.
- ``addcmul(x, a, b, value=c)`` is ``x + c * a * b`` evaluated left to right, ``addcdiv`` is ``x + c * a / b``.
- No fastmath: without contraction into FMA the kernels agree bit for bit with a plain numpy float64 reference.
  ``error_model="numpy"``: a division by zero gives inf/nan (a diverging run shows it) instead of raising, and
  without the per-division zero check LLVM vectorises the loops (4-5x faster).
- torch evaluates ``exp_avg`` (and RMSProp's centered ``grad_avg``) with ``lerp_``, which its vectorised CPU code
  fuses into an FMA; we evaluate the documented ``beta1 * m + (1 - beta1) * g``. The two differ in the last bit, so
  agreement with torch is to rounding (about 1e-15 relative per step in float64), not bit for bit.

The per-element rules (``_sgd_elem`` ...) are shared with ``race_step_2d``, the 2-D optimizer race kernel, so a race
and the ``simulator.functional.optim`` classes take identical steps.
"""
from __future__ import annotations

import math

from typing import Callable

import numpy as np
from numba import njit

# Family codes of race_step_2d, one per update rule.
SGD, SGD_MOMENTUM, ADAGRAD, RMSPROP, ADAM, ADAMW = 0, 1, 2, 3, 4, 5
# Columns of race_step_2d's hyper array.
H_MOMENTUM, H_NESTEROV, H_WEIGHT_DECAY, H_BETA1, H_BETA2, H_EPS, H_CENTERED = 0, 1, 2, 3, 4, 5, 6
N_HYPER = 7


# ----------------------------------------------------------------------------------------------- scalar coefficients
@njit(cache=True, nogil=True, error_model="numpy")
def adam_coefficients(lr: float, beta1: float, beta2: float, step: int) -> tuple[float, float]:
    """(step_size, sqrt(bias_correction2)) for Adam's update number ``step`` (counted from 1), in float64.

    bias_correction1 = 1 - beta1**step, bias_correction2 = 1 - beta2**step, step_size = lr / bias_correction1.
    The power is taken on a float exponent so it goes through libm's pow, exactly as Python's ``beta1 ** step``;
    the square root is math.sqrt, as torch's _dispatch_sqrt (x ** 0.5 can differ from it in the last bit).
    """
    t = float(step)
    bias_correction1 = 1.0 - beta1**t
    bias_correction2 = 1.0 - beta2**t
    return lr / bias_correction1, math.sqrt(bias_correction2)


# ------------------------------------------------------------------------------------------------ per-element rules
@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _sgd_elem(p, g, lr, wd):
    g = g + wd * p
    return p - lr * g


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _momentum_elem(p, g, buf, lr, momentum, wd, nesterov, first):
    """buf <- momentum * buf + g (buf <- g on the first step); step along buf, or g + momentum * buf (Nesterov)."""
    g = g + wd * p
    if first:
        buf = g
    else:
        buf = momentum * buf + g
    if nesterov:
        d = g + momentum * buf
    else:
        d = buf
    return p - lr * d, buf


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _adagrad_elem(p, g, s, lr, eps, wd):
    g = g + wd * p
    s = s + g * g
    return p - lr * g / (np.sqrt(s) + eps), s


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _rmsprop_elem(p, g, sq, ga, buf, lr, alpha, one_minus_alpha, eps, momentum, wd, centered, use_momentum):
    """square_avg <- alpha sq + (1-alpha) g^2; avg = sqrt(sq [- grad_avg^2 if centered]) + eps;
    with momentum: buf <- momentum buf + g / avg, p -= lr buf; without: p -= lr g / avg."""
    g = g + wd * p
    sq = alpha * sq + one_minus_alpha * g * g
    if centered:
        ga = alpha * ga + one_minus_alpha * g
        avg = np.sqrt(sq - ga * ga) + eps
    else:
        avg = np.sqrt(sq) + eps
    if use_momentum:
        buf = momentum * buf + g / avg
        p = p - lr * buf
    else:
        p = p - lr * g / avg
    return p, sq, ga, buf


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _adam_elem(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps):
    """m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2; p -= step_size m / (sqrt(v)/sqrt(bc2) + eps)."""
    m = beta1 * m + one_minus_beta1 * g
    v = beta2 * v + one_minus_beta2 * g * g
    denom = np.sqrt(v) / bc2_sqrt + eps
    return p - step_size * m / denom, m, v


# --------------------------------------------------------------------------------------------- flat in-place kernels
@njit(cache=True, nogil=True, error_model="numpy")
def sgd_step(p, g, lr, weight_decay):
    """p -= lr * (g + weight_decay * p). p, g: (n,) same dtype."""
    t = p.dtype.type
    lr_, wd = t(lr), t(weight_decay)
    for i in range(p.shape[0]):
        p[i] = _sgd_elem(p[i], g[i], lr_, wd)


@njit(cache=True, nogil=True, error_model="numpy")
def sgd_momentum_step(p, g, buf, lr, momentum, weight_decay, nesterov, first):
    """SGD with (Nesterov) momentum, dampening 0. p, g, buf: (n,). ``first``: buf is set to g instead of updated."""
    t = p.dtype.type
    lr_, mu, wd = t(lr), t(momentum), t(weight_decay)
    if nesterov:
        for i in range(p.shape[0]):
            p[i], buf[i] = _momentum_elem(p[i], g[i], buf[i], lr_, mu, wd, True, first)
    else:
        for i in range(p.shape[0]):
            p[i], buf[i] = _momentum_elem(p[i], g[i], buf[i], lr_, mu, wd, False, first)


@njit(cache=True, nogil=True, error_model="numpy")
def adagrad_step(p, g, state_sum, lr, eps, weight_decay):
    """sum += g^2; p -= lr g / (sqrt(sum) + eps) (lr_decay 0). p, g, state_sum: (n,)."""
    t = p.dtype.type
    lr_, eps_, wd = t(lr), t(eps), t(weight_decay)
    for i in range(p.shape[0]):
        p[i], state_sum[i] = _adagrad_elem(p[i], g[i], state_sum[i], lr_, eps_, wd)


@njit(cache=True, nogil=True, error_model="numpy")
def rmsprop_step(p, g, square_avg, grad_avg, buf, lr, alpha, eps, momentum, weight_decay, centered):
    """RMSProp as torch.optim.RMSprop. p, g, square_avg: (n,); grad_avg: (n,) if centered, else unused (may be
    empty); buf: (n,) if momentum > 0, else unused (may be empty)."""
    t = p.dtype.type
    lr_, a, oma, eps_, mu, wd = t(lr), t(alpha), t(1.0 - alpha), t(eps), t(momentum), t(weight_decay)
    zero = t(0.0)
    n = p.shape[0]
    use_momentum = momentum > 0.0
    if centered and use_momentum:
        for i in range(n):
            p[i], square_avg[i], grad_avg[i], buf[i] = _rmsprop_elem(
                p[i], g[i], square_avg[i], grad_avg[i], buf[i], lr_, a, oma, eps_, mu, wd, True, True)
    elif centered:
        for i in range(n):
            p[i], square_avg[i], grad_avg[i], _ = _rmsprop_elem(
                p[i], g[i], square_avg[i], grad_avg[i], zero, lr_, a, oma, eps_, mu, wd, True, False)
    elif use_momentum:
        for i in range(n):
            p[i], square_avg[i], _, buf[i] = _rmsprop_elem(
                p[i], g[i], square_avg[i], zero, buf[i], lr_, a, oma, eps_, mu, wd, False, True)
    else:
        for i in range(n):
            p[i], square_avg[i], _, _ = _rmsprop_elem(
                p[i], g[i], square_avg[i], zero, zero, lr_, a, oma, eps_, mu, wd, False, False)


@njit(cache=True, nogil=True, error_model="numpy")
def adam_step(p, g, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step):
    """Adam (L2 weight decay added to the gradient), update number ``step`` >= 1. p, g, exp_avg, exp_avg_sq: (n,)."""
    t = p.dtype.type
    step_size, bc2_sqrt = adam_coefficients(lr, beta1, beta2, step)
    b1, omb1, b2, omb2 = t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2)
    ss, bc2, eps_, wd = t(step_size), t(bc2_sqrt), t(eps), t(weight_decay)
    if weight_decay != 0.0:
        for i in range(p.shape[0]):
            gi = g[i] + wd * p[i]
            p[i], exp_avg[i], exp_avg_sq[i] = _adam_elem(
                p[i], gi, exp_avg[i], exp_avg_sq[i], b1, omb1, b2, omb2, ss, bc2, eps_)
    else:
        for i in range(p.shape[0]):
            p[i], exp_avg[i], exp_avg_sq[i] = _adam_elem(
                p[i], g[i], exp_avg[i], exp_avg_sq[i], b1, omb1, b2, omb2, ss, bc2, eps_)


@njit(cache=True, nogil=True, error_model="numpy")
def adamw_step(p, g, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step):
    """AdamW: p *= 1 - lr * weight_decay first (decoupled decay), then Adam's update without L2. Arrays: (n,)."""
    t = p.dtype.type
    step_size, bc2_sqrt = adam_coefficients(lr, beta1, beta2, step)
    b1, omb1, b2, omb2 = t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2)
    ss, bc2, eps_ = t(step_size), t(bc2_sqrt), t(eps)
    decay = t(1.0 - lr * weight_decay)
    if weight_decay != 0.0:
        for i in range(p.shape[0]):
            p[i], exp_avg[i], exp_avg_sq[i] = _adam_elem(
                p[i] * decay, g[i], exp_avg[i], exp_avg_sq[i], b1, omb1, b2, omb2, ss, bc2, eps_)
    else:
        for i in range(p.shape[0]):
            p[i], exp_avg[i], exp_avg_sq[i] = _adam_elem(
                p[i], g[i], exp_avg[i], exp_avg_sq[i], b1, omb1, b2, omb2, ss, bc2, eps_)


# ---------------------------------------------------------------------------------------------------- 2-D race step
@njit(cache=True, nogil=True, error_model="numpy")
def race_step_2d(x, gx, gy, s1, s2, s3, family, hyper, lr, step, active, diverged, limit):
    """One update of K independent float64 optimizers, each on its own 2-D point; flags divergence.

    x, s1, s2, s3: (K, 2) points and state (s1: momentum_buffer / sum / square_avg / exp_avg; s2: grad_avg /
    exp_avg_sq; s3: RMSProp's momentum_buffer). gx, gy: (K,) gradients at x. family: (K,) int64 family codes;
    hyper: (K, N_HYPER); lr: (K,) this update's rates; step: (K,) int64 updates taken (incremented here);
    active: (K,) bool, inactive rows are left alone. A row whose new point is non-finite or has a coordinate beyond
    ``limit`` in size is put back to its previous point, made inactive, and gets diverged[k] = its update number.
    The per-element rules, hence the numbers, are those of the flat kernels.
    """
    for k in range(x.shape[0]):
        if not active[k]:
            continue
        fam = family[k]
        a = lr[k]
        mu = hyper[k, H_MOMENTUM]
        wd = hyper[k, H_WEIGHT_DECAY]
        eps = hyper[k, H_EPS]
        step[k] += 1
        x0 = x[k, 0]
        x1 = x[k, 1]
        for j in range(2):
            xj = x[k, j]
            gj = gx[k] if j == 0 else gy[k]
            if fam == SGD:
                xj = _sgd_elem(xj, gj, a, wd)
            elif fam == SGD_MOMENTUM:
                xj, s1[k, j] = _momentum_elem(xj, gj, s1[k, j], a, mu, wd, hyper[k, H_NESTEROV] != 0.0,
                                              step[k] == 1)
            elif fam == ADAGRAD:
                xj, s1[k, j] = _adagrad_elem(xj, gj, s1[k, j], a, eps, wd)
            elif fam == RMSPROP:
                alpha = hyper[k, H_BETA1]
                xj, s1[k, j], s2[k, j], s3[k, j] = _rmsprop_elem(
                    xj, gj, s1[k, j], s2[k, j], s3[k, j], a, alpha, 1.0 - alpha, eps, mu, wd,
                    hyper[k, H_CENTERED] != 0.0, mu > 0.0)
            else:
                b1 = hyper[k, H_BETA1]
                b2 = hyper[k, H_BETA2]
                step_size, bc2_sqrt = adam_coefficients(a, b1, b2, step[k])
                if wd != 0.0:
                    if fam == ADAMW:
                        xj = xj * (1.0 - a * wd)
                    else:
                        gj = gj + wd * xj
                xj, s1[k, j], s2[k, j] = _adam_elem(
                    xj, gj, s1[k, j], s2[k, j], b1, 1.0 - b1, b2, 1.0 - b2, step_size, bc2_sqrt, eps)
            x[k, j] = xj
        if not (abs(x[k, 0]) <= limit and abs(x[k, 1]) <= limit):  # also catches NaN
            x[k, 0] = x0
            x[k, 1] = x1
            active[k] = False
            diverged[k] = step[k]


# ---------------------------------------------------------------------------------------------------------- warm-up
def warmup_tasks() -> list[tuple[str, Callable[[], None]]]:
    """(name, zero-argument callable) pairs that compile every kernel for float64 and float32 (kernels/warmup.py)."""
    tasks: list[tuple[str, Callable[[], None]]] = []
    for dtype in (np.float64, np.float32):
        def arrays(k: int, dtype=dtype) -> list[np.ndarray]:
            return [np.ones(3, dtype) for _ in range(k)]

        name = np.dtype(dtype).name
        tasks += [
            (f"optim.sgd_step[{name}]", lambda a=arrays: sgd_step(*a(2), 0.1, 0.01)),
            (f"optim.sgd_momentum_step[{name}]",
             lambda a=arrays: sgd_momentum_step(*a(3), 0.1, 0.9, 0.01, True, False)),
            (f"optim.adagrad_step[{name}]", lambda a=arrays: adagrad_step(*a(3), 0.1, 1e-10, 0.0)),
            (f"optim.rmsprop_step[{name}]",
             lambda a=arrays: rmsprop_step(*a(5), 0.01, 0.99, 1e-8, 0.9, 0.0, True)),
            (f"optim.adam_step[{name}]", lambda a=arrays: adam_step(*a(4), 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)),
            (f"optim.adamw_step[{name}]", lambda a=arrays: adamw_step(*a(4), 1e-3, 0.9, 0.999, 1e-8, 0.01, 1)),
        ]

    def race() -> None:
        z = np.zeros((1, 2))
        race_step_2d(z.copy(), np.ones(1), np.ones(1), z.copy(), z.copy(), z.copy(), np.zeros(1, np.int64),
                     np.zeros((1, N_HYPER)), np.ones(1), np.zeros(1, np.int64), np.ones(1, np.bool_),
                     np.zeros(1, np.int64), 1e6)

    tasks.append(("optim.race_step_2d", race))
    return tasks
