"""Classification losses over scores (N, C) and integer labels y (N,): multiclass SVM and softmax cross-entropy;
softmax cross-entropy also against probability targets t (N, C) (soft labels: label smoothing, mixup, CutMix).

Both return (loss, dscores) with the loss averaged over the batch (loss as a float64 scalar, dscores in the scores'
dtype). Softmax subtracts each row's maximum before exponentiating, so logits of +-1e4 give finite values. Sums
accumulate in float64.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def svm_loss(scores, y):
    """L = 1/N sum_n sum_{j != y_n} max(0, s_nj - s_ny + 1). dscores: +1/N for each positive margin, minus their
    count/N at the correct class. A margin exactly 0 counts as inactive."""
    N, C = scores.shape
    loss = 0.0
    dscores = np.zeros_like(scores)
    inv_n = 1.0 / N
    for n in range(N):
        yn = y[n]
        sy = np.float64(scores[n, yn])
        count = 0
        for j in range(C):
            if j == yn:
                continue
            margin = np.float64(scores[n, j]) - sy + 1.0
            if margin > 0.0:
                loss += margin
                dscores[n, j] = inv_n
                count += 1
        dscores[n, yn] = -count * inv_n
    return loss * inv_n, dscores


@njit(cache=True, nogil=True, error_model="numpy")
def _shifted_exp(scores, n, p):
    """Row n of scores, shifted by its maximum and exponentiated into p (C,) in float64. Returns (max, sum of p):
    softmax(s_n) = p / z and logsumexp(s_n) = max + log(z)."""
    C = scores.shape[1]
    mx = np.float64(scores[n, 0])
    for j in range(1, C):
        v = np.float64(scores[n, j])
        if v > mx:
            mx = v
    z = 0.0
    for j in range(C):
        e = math.exp(np.float64(scores[n, j]) - mx)
        p[j] = e
        z += e
    return mx, z


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_loss(scores, y):
    """L = 1/N sum_n (logsumexp(s_n) - s_ny). dscores = (softmax(s) - onehot(y)) / N."""
    N, C = scores.shape
    loss = 0.0
    dscores = np.empty_like(scores)
    inv_n = 1.0 / N
    p = np.empty(C, np.float64)
    for n in range(N):
        mx, z = _shifted_exp(scores, n, p)
        yn = y[n]
        loss += math.log(z) - (np.float64(scores[n, yn]) - mx)
        for j in range(C):
            dscores[n, j] = p[j] / z * inv_n
        dscores[n, yn] = (p[yn] / z - 1.0) * inv_n
    return loss * inv_n, dscores


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_loss_soft(scores, t):
    """Cross-entropy against probability targets t (N, C) (float64):
    L = 1/N sum_n sum_j t_nj (logsumexp(s_n) - s_nj). dscores = (softmax(s) * sum_j t_nj - t) / N, which is
    (softmax(s) - t) / N for rows summing to 1."""
    N, C = scores.shape
    loss = 0.0
    dscores = np.empty_like(scores)
    inv_n = 1.0 / N
    p = np.empty(C, np.float64)
    for n in range(N):
        mx, z = _shifted_exp(scores, n, p)
        lz = math.log(z)
        tsum = 0.0
        for j in range(C):
            tj = t[n, j]
            tsum += tj
            if tj != 0.0:       # 0 * (lse - s) is 0 even where a logit is huge
                loss += tj * (lz - (np.float64(scores[n, j]) - mx))
        for j in range(C):
            dscores[n, j] = (p[j] / z * tsum - t[n, j]) * inv_n
    return loss * inv_n, dscores


def warmup_tasks(dtypes=(np.float64, np.float32)) -> list[tuple[str, Callable[[], None]]]:
    """(name, zero-arg callable) pairs that compile (or load from cache) the loss kernels for `dtypes`."""
    def task(dt):
        def run():
            s = np.arange(6, dtype=dt).reshape(2, 3)
            y = np.array([0, 2], np.int64)
            svm_loss(s, y)
            softmax_loss(s, y)
            softmax_loss_soft(s, np.full((2, 3), 1.0 / 3.0))
        return run
    return [(f"losses[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
