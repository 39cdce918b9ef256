"""``spikerl bench``: the grid env x agent x seed, each cell a normal train run (run folder,
W&B) with the env's step budget and the shared evaluation protocol, run in parallel worker
processes (or as Ray tasks on an existing cluster). A cell whose ``summary.json`` says it
finished is never redone, so an interrupted bench continues where it stopped."""
from __future__ import annotations

import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml


def cell_dir(bench_dir: Path, env_id: str, agent: str, seed: int) -> Path:
    return Path(bench_dir) / "runs" / f"{env_id.replace('/', '-')}__{agent}__s{seed}"


def cell_done(run_dir: Path) -> bool:
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()).get("status") in ("finished", "solved")
    except (json.JSONDecodeError, OSError):
        return False


def run_cell(cell: dict) -> dict:
    """Train one cell (in a worker process or a Ray task); returns its summary."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one core per worker: no oversubscription
    from .train import train

    run_dir = Path(cell["run_dir"])
    resume = run_dir if (run_dir / "config.yaml").exists() else None
    if resume is None:
        train(cell["agent"], cell["env"], steps=cell["steps"], seed=cell["seed"], overrides=cell["overrides"],
              use_wandb=cell["use_wandb"], eval_episodes=cell["eval_episodes"], run_dir=run_dir, quiet=True)
    else:
        train(None, None, resume=resume, use_wandb=cell["use_wandb"], quiet=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary.get("status") not in ("finished", "solved"):
        raise RuntimeError(f"{run_dir}: run ended with status {summary.get('status')}")
    return summary


def plan(agents, envs, seeds, steps, out, use_wandb, eval_episodes, overrides) -> list[dict]:
    from .config import load_agent_file, load_env_file

    cells = []
    for env_id in envs:
        env_file, _ = load_env_file(env_id)  # fail early on a bad name
        for agent in agents:
            _, agent_file, _ = load_agent_file(agent)
            own = overrides if agent_file.kind != "sb3" else {}
            for seed in range(seeds):
                cells.append(dict(env=env_file.id, agent=agent, seed=seed, steps=steps or env_file.budget,
                                  overrides=own, use_wandb=use_wandb, eval_episodes=eval_episodes,
                                  run_dir=str(cell_dir(out, env_file.id, agent, seed))))
    return cells


def run_bench(*, agents, envs, seeds: int, steps: int | None = None, workers: int | None = None, out="runs/bench",
              use_wandb: bool = True, ray_address: str | None = None, eval_episodes: int | None = None,
              overrides: dict | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = plan(agents, envs, seeds, steps, out, use_wandb, eval_episodes, overrides or {})
    with open(out / "bench.yaml", "w") as f:
        yaml.safe_dump({"agents": list(agents), "envs": list(envs), "seeds": seeds, "steps": steps,
                        "eval_episodes": eval_episodes, "overrides": overrides or {}}, f, sort_keys=False)
    todo = [c for c in cells if not cell_done(Path(c["run_dir"]))]
    print(f"bench {out}: {len(cells)} runs, {len(cells) - len(todo)} already done, {len(todo)} to run", file=sys.stderr)
    if todo:
        if ray_address:
            _run_ray(todo, ray_address)
        else:
            _run_pool(todo, workers or os.cpu_count() or 1)
    return out


def _run_pool(todo: list[dict], workers: int) -> None:
    from .train import STOP

    failures = []
    # spawn, not fork: a forked child inherits the locks of the parent's threads (W&B service,
    # numba, BLAS) in whatever state they were, and can hang on them
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
        futures = {pool.submit(run_cell, c): c for c in todo}
        for fut in as_completed(futures):
            c = futures[fut]
            try:
                s = fut.result()
                print(f"  done {Path(c['run_dir']).name}: return {s['final_mean_return']:.1f}", file=sys.stderr)
            except Exception as exc:  # report every failed cell, then fail
                failures.append(f"{Path(c['run_dir']).name}: {exc}")
            if STOP.is_set():
                for f in futures:
                    f.cancel()
    if failures:
        raise RuntimeError("bench cells failed:\n  " + "\n  ".join(failures))


def _run_ray(todo: list[dict], address: str) -> None:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("--ray needs Ray: pip install 'spikerl[ray]'") from exc
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(run_cell)
    refs = [remote.remote(c) for c in todo]
    for c, s in zip(todo, ray.get(refs)):
        print(f"  done {Path(c['run_dir']).name}: return {s['final_mean_return']:.1f}", file=sys.stderr)
