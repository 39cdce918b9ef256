"""How well does an agent's critic explain the returns while it trains? Trains one agent
(``fts-snn``, ``pg-mlp`` or an SB3 baseline such as ``ppo``, built exactly as
``default_agent.py`` builds its cells: agent file, env file, ``--set`` overrides) for
``--steps`` and prints, for ``--rows`` evenly spaced training rounds, SB3's
``train/explained_variance`` (1 - Var(returns - values) / Var(returns), the values before the
round), the rollout's mean episode return and the round's ``train/approx_kl`` and
``train/clip_fraction`` (``--rows 0``: every round). spikerl's agents and SB3 log the same keys,
so the two critics compare directly; a round whose KL jumps and after which KL and clip fraction
stay at 0 is a policy that saturated and stopped learning (results/tuning/rule-gap.md).

    python benchmarks/critic_fit.py Acrobot-v1 --agent pg-mlp --steps 300000 --seed 0
    python benchmarks/critic_fit.py Acrobot-v1 --agent ppo --steps 300000 --seed 0
"""
from __future__ import annotations

import argparse
import os

import numpy as np


def _mean_return(buffer) -> float:
    return float(np.mean([e["r"] for e in buffer])) if buffer else float("nan")


def _row(step: int, values: dict, buffer) -> tuple:
    """(step, explained variance, mean episode return, approx_kl, clip fraction) of one round's
    logged ``train/...`` values (the same keys in spikerl's logger and SB3's)."""
    return (step, float(values["train/explained_variance"]), _mean_return(buffer),
            float(values.get("train/approx_kl", np.nan)), float(values.get("train/clip_fraction", np.nan)))


def _spikerl_rows(model, steps: int) -> list[tuple]:
    from spikerl.callbacks import BaseCallback

    rows = []

    class Round(BaseCallback):
        def on_step(self) -> bool:  # a training round dumps one entry into the logger's history
            history = self.model.logger.history
            if history and len(rows) < len(history) and "train/explained_variance" in history[-1][1]:
                step, values = history[-1]
                rows.append(_row(step, values, self.model.ep_info_buffer))
            return True

    model.learn(steps, callback=Round())
    return rows


def _sb3_rows(model, steps: int) -> list[tuple]:
    from stable_baselines3.common.callbacks import BaseCallback

    rows = []

    class Round(BaseCallback):
        def _on_rollout_start(self) -> None:  # the previous round's figures are in the logger now
            values = self.logger.name_to_value
            if "train/explained_variance" in values:
                rows.append(_row(self.num_timesteps, values, self.model.ep_info_buffer))

        def _on_step(self) -> bool:
            return True

    model.learn(steps, callback=Round())
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("env")
    ap.add_argument("--agent", default="fts-snn")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=12, help="rows printed, evenly spaced (0: every round)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from spikerl.config import load_agent_file, load_env_file, parse_overrides, resolve_hyperparameters
    from spikerl.train import build_model

    _, agent_file, _ = load_agent_file(args.agent)
    env_file, _ = load_env_file(args.env)
    hp = resolve_hyperparameters(agent_file, env_file, parse_overrides(args.set) if agent_file.kind != "sb3" else {})
    model = build_model(agent_file.kind, agent_file, env_file, hp, args.seed)
    rows = (_sb3_rows if agent_file.kind == "sb3" else _spikerl_rows)(model, args.steps)
    print(f"{args.env} {args.agent} seed {args.seed} {args.steps} steps: {len(rows)} training rounds")
    print(f"{'step':>9} {'explained_variance':>19} {'episode return':>15} {'approx_kl':>10} {'clip_fraction':>14}")
    for step, ev, ret, kl, clip in rows[:: max(1, len(rows) // args.rows) if args.rows else 1]:
        print(f"{step:>9} {ev:>19.3f} {ret:>15.1f} {kl:>10.4f} {clip:>14.3f}")
    evs = np.array([row[1] for row in rows])
    half = evs[len(evs) // 2:]
    print(f"second half of training: explained variance mean {np.nanmean(half):.3f}, "
          f"10th percentile {np.nanpercentile(half, 10):.3f} over {half.size} rounds")


if __name__ == "__main__":
    main()
