"""numba compilation flags, in one place.

``cache=True`` writes compiled kernels next to the package so later processes skip
compilation; ``fastmath`` stays off so the compiled kernels and the numpy reference agree
to rounding error; ``error_model="numpy"``: a float division by zero gives inf or nan, as
numpy's does, instead of a check before every division (the check kept loops with a division,
Adam's for one, from running on vector registers: 2.5x slower; no kernel divides by zero, and
every result is the same bit for bit).

numba checks a cached function against its own file only, and a function compiles the
helpers it calls (or inlines) into itself: after an edit of ``engine.py`` alone, the cached
``fastpath._predict_one`` would go on running the old kernel. So the cache is stamped with a
hash of every module of the package, and thrown away when the sources change
(:func:`_drop_stale_cache`, on import).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba
import numpy as np

JIT_FLAGS = dict(nopython=True, cache=True, fastmath=False, nogil=True, error_model="numpy")
_STAMP = "spikerl-sources.sha256"


def _drop_stale_cache(package: Path = Path(__file__).resolve().parent) -> bool:
    """Delete the package's numba cache files (``__pycache__/*.nbi``, ``*.nbc``) when the
    package's sources differ from the ones the cache was stamped with; True if it did. A
    cache that cannot be written (a read-only install, whose files do not change) is left."""
    h = hashlib.sha256()
    for src in sorted(package.rglob("*.py")):
        h.update(str(src.relative_to(package)).encode() + b"\0" + src.read_bytes())
    digest = h.hexdigest()
    cache = package / "__pycache__"
    stamp = cache / _STAMP
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    try:
        cache.mkdir(exist_ok=True)
        for path in [*package.rglob("*.nbi"), *package.rglob("*.nbc")]:
            path.unlink(missing_ok=True)
        tmp = cache / f".{_STAMP}.{os.getpid()}"
        tmp.write_text(digest)
        os.replace(tmp, stamp)
    except OSError:
        return False
    return True


_drop_stale_cache()


def njit(fn):
    """Compile ``fn`` with the project's flags."""
    return numba.jit(**JIT_FLAGS)(fn)


def njit_inline(fn):
    """Compile a small helper that is inlined into its callers at the IR level (no call
    overhead, no reference counting of its array arguments)."""
    return numba.jit(inline="always", **JIT_FLAGS)(fn)



def njit_sums(fn):
    """Compile ``fn`` with the project's flags, except that floating-point sums may be
    reassociated and multiply-adds fused (``fastmath={"contract", "reassoc"}``; no
    assumption about NaN or infinity): for dense passes whose sums have no order to keep, so
    the compiler can run them on vector registers. The result is deterministic and equals the
    plain sum's up to rounding."""
    return numba.jit(**{**JIT_FLAGS, "fastmath": {"contract", "reassoc"}})(fn)


@numba.jit(inline="always", **JIT_FLAGS)
def pairwise_sum(a, lo, hi):
    """``np.sum`` of the float64 values ``a[lo:hi]``, bit for bit: numpy's pairwise summation
    (fewer than 8 values in order; up to 128 in eight interleaved partial sums combined as
    ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the rest in order; beyond, the
    two halves' sums, the first half a multiple of 8 long), added to 0, so that compiled code
    can reproduce what a numpy statement computed."""
    if hi - lo <= 128:
        return 0.0 + _pairwise_leaf(a, lo, hi)  # numpy adds to its identity (a -0.0 sum is 0.0)
    return 0.0 + _pairwise_halves(a, lo, hi)


@numba.jit(inline="always", **JIT_FLAGS)
def _pairwise_leaf(a, lo, hi):
    n = hi - lo
    if n < 8:
        res = 0.0
        for i in range(lo, hi):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = lo + 8
    stop = hi - (n % 8)
    while i < stop:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < hi:
        res += a[i]
        i += 1
    return res


@numba.jit(**JIT_FLAGS)
def _pairwise_halves(a, lo, hi):
    """:func:`pairwise_sum` of more than 128 values: numpy's recursion (left half's sum plus
    the right half's) walked with an explicit stack (numba's cache cannot hold a recursive
    function)."""
    L, H, S = np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64, np.int64)
    left = np.empty(64)
    top = 0
    L[0], H[0], S[0] = lo, hi, 0
    while True:
        n = H[top] - L[top]
        if n > 128:  # split: the left half first
            half = n // 2
            half -= half % 8
            S[top] = 1
            L[top + 1], H[top + 1], S[top + 1] = L[top], L[top] + half, 0
            top += 1
            continue
        v = _pairwise_leaf(a, L[top], H[top])
        while True:  # hand v up: a parent's left sum waits for its right half
            top -= 1
            if top < 0:
                return v
            if S[top] == 1:
                left[top] = v
                S[top] = 2
                half = (H[top] - L[top]) // 2
                half -= half % 8
                L[top + 1], H[top + 1], S[top + 1] = L[top] + half, H[top], 0
                top += 1
                break
            v = left[top] + v
