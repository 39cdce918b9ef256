r"""Kernel banks: the temporal filters that turn spike trains into traces.

A bank is a float64 array of shape ``(K, D)``: ``K`` bases over a finite memory of ``D``
steps. The pre-synaptic trace of neuron ``j`` for basis ``k`` at time ``t`` is

    xbar_{j,k,t} = sum_{d=0}^{D-1} a_k(d) s_{j,t-1-d}

(DESIGN.md section 2). Banks are plain numpy, computed once; the simulation only reads
them.

- :func:`raised_cosine_bank`: Pillow et al. (2008) raised cosines on a log-time axis,
  ``a_k(d) = 0.5 (1 + cos(clip(pi*mu*(log(d+c) - phi_k)/Delta, -pi, pi)))``.
- :func:`exponential_bank`: one basis ``a(d) = exp(-d/tau_s)``, the cheap default.
"""
from __future__ import annotations

import numpy as np


def _check_memory(tau: int, name: str = "tau") -> int:
    if isinstance(tau, bool) or not isinstance(tau, (int, np.integer)) or tau < 1:
        raise ValueError(f"{name} must be an integer >= 1 (kernel memory in steps), got {tau!r}")
    return int(tau)


def raised_cosine_bank(n_basis: int, tau: int, *, c: float = 1.0, mu: float = 0.5) -> np.ndarray:
    """Raised-cosine bases on a log-time axis (Pillow et al. 2008).

    Args:
        n_basis: number of bases ``K >= 1``.
        tau: memory in steps ``D >= 1``; every basis is zero at lags ``>= tau``.
        c: log-time offset (``> 0``); larger ``c`` makes the axis more linear.
        mu: width factor; ``0.5`` makes neighbouring bases overlap by half so that
            they sum to one between the first and last centres.

    Returns:
        float64 array ``(n_basis, tau)``.
    """
    tau = _check_memory(tau)
    if isinstance(n_basis, bool) or not isinstance(n_basis, (int, np.integer)) or n_basis < 1:
        raise ValueError(f"n_basis must be an integer >= 1, got {n_basis!r}")
    if not c > 0:
        raise ValueError(f"c must be > 0, got {c!r}")
    if not mu > 0:
        raise ValueError(f"mu must be > 0, got {mu!r}")
    lag = np.log(np.arange(tau) + c)
    lo, hi = np.log(c), np.log(tau - 1 + c)
    if n_basis == 1 or hi <= lo:
        phi = np.full(n_basis, lo)
        delta = max(hi - lo, 1.0)
    else:
        phi = np.linspace(lo, hi, n_basis)
        delta = phi[1] - phi[0]
    arg = np.clip(np.pi * mu * (lag[None, :] - phi[:, None]) / delta, -np.pi, np.pi)
    return 0.5 * (1.0 + np.cos(arg))


def exponential_bank(tau_s: float, memory: int) -> np.ndarray:
    """One exponentially decaying basis ``a(d) = exp(-d / tau_s)``, truncated at ``memory``.

    Returns:
        float64 array ``(1, memory)``.
    """
    memory = _check_memory(memory, "memory")
    if not (isinstance(tau_s, (int, float, np.floating, np.integer)) and tau_s >= 1):
        raise ValueError(f"tau_s must be a number >= 1 (decay time in steps), got {tau_s!r}")
    return np.exp(-np.arange(memory, dtype=np.float64) / float(tau_s))[None, :]


def check_bank(bank, name: str) -> np.ndarray:
    """Validate a user-given bank: a finite float array ``(K >= 1, D >= 1)``."""
    arr = bank if type(bank) is np.ndarray and bank.dtype == np.float64 else np.asarray(bank, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (n_basis, memory) with both >= 1, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    return np.ascontiguousarray(arr)
