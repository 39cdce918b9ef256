"""numba compilation flags, in one place.

``cache=True`` writes compiled kernels next to the package so later processes skip
compilation; ``fastmath`` stays off so the compiled kernels and the numpy reference agree
to rounding error.
"""
from __future__ import annotations

import numba

JIT_FLAGS = dict(nopython=True, cache=True, fastmath=False, nogil=True)


def njit(fn):
    """Compile ``fn`` with the project's flags."""
    return numba.jit(**JIT_FLAGS)(fn)



def njit_inline(fn):
    """Compile a small helper that is inlined into its callers at the IR level (no call
    overhead, no reference counting of its array arguments)."""
    return numba.jit(inline="always", **JIT_FLAGS)(fn)


def njit_parallel(fn):
    """Compile ``fn`` with the project's flags and ``parallel=True`` (``prange`` on threads).

    Not cached: numba's on-disk cache keys a function by its name and file, so a parallel
    and a serial compilation of the same function would overwrite each other's entries."""
    return numba.jit(parallel=True, **{**JIT_FLAGS, "cache": False})(fn)
