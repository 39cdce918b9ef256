"""The same tiny bench through a local Ray cluster gives the same results as the process pool."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is the optional 'ray' extra (installed by the dev extra)")

from spikerl import load_model  # noqa: E402
from spikerl.bench import cell_dir, run_bench  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    port = _free_port()
    tmp = tmp_path_factory.mktemp("ray")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats", f"--temp-dir={tmp}"], check=True, env=env, capture_output=True)
    yield f"127.0.0.1:{port}"
    ray.shutdown()
    subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True)


def test_ray_bench_equals_process_pool(tmp_path, ray_address):
    kw = dict(agents=["fts-snn", "ppo"], envs=["CartPole-v1"], seeds=2, steps=1200, use_wandb=False,
              eval_episodes=3, overrides={"batch_size": 64})
    run_bench(out=tmp_path / "pool", workers=2, **kw)
    run_bench(out=tmp_path / "ray", ray_address=ray_address, **kw)
    for agent in ("fts-snn", "ppo"):
        for seed in (0, 1):
            a, b = (json.loads((cell_dir(tmp_path / d, "CartPole-v1", agent, seed) / "summary.json").read_text())
                    for d in ("pool", "ray"))
            assert a["final_returns"] == b["final_returns"] and a["steps"] == b["steps"]
        ma = load_model(cell_dir(tmp_path / "pool", "CartPole-v1", "fts-snn", 0) / "model.spk")
        mb = load_model(cell_dir(tmp_path / "ray", "CartPole-v1", "fts-snn", 0) / "model.spk")
        np.testing.assert_array_equal(ma.policy.theta, mb.policy.theta)
