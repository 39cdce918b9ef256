"""numpy's OpenBLAS kept to one thread while an agent trains.

The critic's products are small (a rollout's features times a few hundred random features),
yet OpenBLAS runs them on one thread per core and its threads then spin, waiting for more
work, on the cores numba's threads (the kernel and the learning rule's compiled passes) need:
on this project's 2-core machine the default agent trained 1.5x faster with
``OPENBLAS_NUM_THREADS=1`` than with OpenBLAS's default. That variable is read once, when
numpy loads, so :func:`single_threaded_blas` sets the thread count of the OpenBLAS libraries
already loaded in the process (found in ``/proc/self/maps``, as threadpoolctl does) for the
duration of a ``with`` block and restores it afterwards. Elsewhere (no ``/proc``, another
BLAS) it does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes

_SYMBOLS = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
            ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
            ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
            ("openblas_set_num_threads", "openblas_get_num_threads"))
"""(set, get) thread-count functions of OpenBLAS builds (numpy's wheels prefix theirs)."""

_controls: list | None = None


def openblas_controls() -> list:
    """``(set_num_threads, get_num_threads)`` of each OpenBLAS library loaded in this process
    (looked up once; empty where none is found)."""
    global _controls
    if _controls is None:
        _controls = []
        try:
            with open("/proc/self/maps") as f:  # address perms offset dev inode path (which may hold spaces)
                fields = [line.rstrip("\n").split(maxsplit=5) for line in f]
            paths = sorted({x[5] for x in fields
                            if len(x) == 6 and x[5].startswith("/") and "openblas" in x[5].lower()})
        except OSError:
            paths = []
        for path in paths:
            try:
                lib = ctypes.CDLL(path)  # already loaded: the same library, no new copy
            except OSError:
                continue
            for set_name, get_name in _SYMBOLS:
                if hasattr(lib, set_name) and hasattr(lib, get_name):
                    setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                    setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                    _controls.append((setter, getter))
                    break
    return _controls


@contextlib.contextmanager
def single_threaded_blas():
    """Within the block, every loaded OpenBLAS runs on one thread; the counts it had are
    restored on leaving (also on an exception)."""
    saved = [(setter, getter()) for setter, getter in openblas_controls()]
    for setter, _ in saved:
        setter(1)
    try:
        yield
    finally:
        for setter, n in saved:
            setter(n)
