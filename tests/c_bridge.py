"""A ctypes bridge to an exported C policy (tests and benchmarks only, not the core API):
compile the module with the system C compiler and drive it from Python."""
import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from spikerl.export import MODES

CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]


def compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or clang) on PATH")
    return cc


def compile_module(src_dir, name="spk_policy", *, float32=False, out=None) -> Path:
    src_dir = Path(src_dir)
    lib = Path(out or src_dir / f"lib{name}{'_f32' if float32 else ''}.so")
    cmd = [compiler(), *CFLAGS, *(["-DSPK_FLOAT32".replace("SPK", name.upper())] if float32 else []),
           "-shared", "-fPIC", str(src_dir / f"{name}.c"), "-o", str(lib), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr}")
    return lib


class Result(ctypes.Structure):
    _fields_ = [("action", ctypes.c_int32), ("latency", ctypes.c_int32), ("no_spike", ctypes.c_int32),
                ("spikes", ctypes.c_int32 * 3), ("sops", ctypes.c_int32)]


class CPolicy:
    """The compiled module: ``decide(obs, mode)`` -> (action index, :class:`Result`)."""

    SAMPLED, DETERMINISTIC, THRESHOLD, MEDIAN, REGULAR = (MODES[k] for k in ("sampled", "deterministic", "threshold",
                                                                             "median", "regular"))

    def __init__(self, lib_path, name="spk_policy", n_obs=None):
        self.lib = ctypes.CDLL(str(lib_path))
        f = lambda s: getattr(self.lib, f"{name}_{s}")  # noqa: E731
        f("state_size").restype = ctypes.c_size_t
        self.state = ctypes.create_string_buffer(f("state_size")())
        self._init = f("init")
        self._init.argtypes = [ctypes.c_void_p] + [ctypes.c_uint64] * 4
        self._decide = f("decide")
        self._decide.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double), ctypes.c_int, ctypes.POINTER(Result)]
        self._decide.restype = ctypes.c_int
        self.res = Result()
        self.n_obs = n_obs
        self._init(self.state, 0, 0, 0, 1)

    def seed_from(self, rng: np.random.Generator) -> None:
        """Continue from the current state of a numpy ``Generator`` (PCG64)."""
        st = rng.bit_generator.state
        if st["bit_generator"] != "PCG64":
            raise ValueError(f"the C module runs PCG64, got a {st['bit_generator']} generator")
        s, inc = st["state"]["state"], st["state"]["inc"]
        m = (1 << 64) - 1
        self._init(self.state, s >> 64, s & m, inc >> 64, inc & m)

    def rng_state(self) -> tuple[int, int]:
        """``(state, inc)`` of the module's PCG64, as numpy's ``bit_generator.state`` has them."""
        hi, lo, ihi, ilo = np.frombuffer(self.state.raw[:32], dtype=np.uint64).tolist()
        return (hi << 64) | lo, (ihi << 64) | ilo

    def decide(self, obs, mode=0):
        x = np.ascontiguousarray(np.asarray(obs, dtype=np.float64).ravel())
        a = self._decide(self.state, x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), mode, ctypes.byref(self.res))
        return a, self.res
