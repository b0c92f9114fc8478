"""FISM's SGD step compiled (numba): one event's update of P, Q and the biases in place.

Why compiled: the step is ~15 numpy calls on a 17 x 10 block, and each call's overhead, not
its arithmetic, was most of the cost (`benchmarks/fism_cost.py`: 58 -> 23 µs a `learn_one` on
MovieLens, the rest being the rows and negatives bookkeeping in Python). The loops below do
the same arithmetic as `FISM.learn_one`'s docstring, in the same order for every event, so a
replay gives the same factors (they agree with the numpy form to ~1e-15, not bit for bit).
The compiled code is cached beside this file (`cache=True`): only a machine's first process
compiles it (a second or two).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["sgd_step"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@numba.njit(cache=True, nogil=True)
def _step(
    p: Any,
    q: Any,
    bias: Any,
    rows: Any,
    history: Any,
    targets: Any,
    scale: float,
    lr: float,
    reg: float,
    bias_lr: float,
) -> None:
    k = p.shape[1]
    n = rows.shape[0]
    u = np.zeros(k)
    for j in range(history.shape[0]):
        for f in range(k):
            u[f] += p[history[j], f]
    for f in range(k):
        u[f] *= scale
    err = np.empty(n)
    for r in range(n):
        dot = 0.0
        for f in range(k):
            dot += q[rows[r], f] * u[f]
        err[r] = targets[r] - bias[rows[r]] - dot
    shrink = 1.0 - lr * reg
    if history.shape[0] > 0:
        pull = np.zeros(k)
        for r in range(n):
            for f in range(k):
                pull[f] += err[r] * q[rows[r], f]
        for j in range(history.shape[0]):
            for f in range(k):
                p[history[j], f] = p[history[j], f] * shrink + lr * scale * pull[f]
    for r in range(n):
        for f in range(k):
            q[rows[r], f] = q[rows[r], f] * shrink + lr * err[r] * u[f]
    for r in range(n):
        bias[rows[r]] = bias[rows[r]] * (1.0 - bias_lr * reg) + bias_lr * err[r]


def sgd_step(
    p: FloatArray,
    q: FloatArray,
    bias: FloatArray,
    rows: IntArray,
    history: IntArray,
    targets: FloatArray,
    scale: float,
    lr: float,
    reg: float,
    bias_lr: float,
) -> None:
    """One event: u = scale · Σ p_j over the `history` rows, err_r = target_r - b_r - u·q_r
    for each of `rows` (the item, then its negatives; distinct), then p_j, q_r and b_r move
    as `FISM.learn_one` says, every gradient from the values before the step."""
    _step(p, q, bias, rows, history, targets, scale, lr, reg, bias_lr)
