"""Quick hyperparameter / rule comparison with the agent API (the sweep behind the note's
"both rules x both reward factors" figures): each JSON config x seeds, trained in 2 worker
processes, evaluated deterministically every 10k steps on 20 episodes (seed 0..19).

    python benchmarks/sweep_rules.py CartPole-v1 200000 4 \\
        '{"T":12,"memory":12,"lr_schedule":"linear","reward_factor":"td","learning_rate":0.003,"hidden_rule":"learning_signal"}' \\
        '{"T":12,"memory":12,"lr_schedule":"linear","reward_factor":"td","learning_rate":0.003,"hidden_rule":"joint"}' \\
        '{"T":12,"memory":12,"lr_schedule":"linear","reward_factor":"mc","learning_rate":0.01,"hidden_rule":"learning_signal"}' \\
        '{"T":12,"memory":12,"lr_schedule":"linear","reward_factor":"mc","learning_rate":0.01,"hidden_rule":"joint"}'

Prints, per config: seeds whose evaluation ever reached the threshold, the best and last
evaluation per seed, and the first step at which the threshold was reached.
"""
import json
import sys
import time
from multiprocessing import get_context

THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}


def run(args):
    kw, steps, seed, env_id = args
    import gymnasium as gym

    from spikerl.agent import SpikingAgent
    from spikerl.callbacks import EvalCallback
    from spikerl.config import load_env_file

    env_file, _ = load_env_file(env_id)
    agent = SpikingAgent(env_id, seed=seed, **{**env_file.encoder, **kw})
    ev = EvalCallback(gym.make(env_id), eval_freq=10_000, n_eval_episodes=20, seed=0)
    t0 = time.time()
    agent.learn(steps, callback=ev)
    hist = [r["mean_return"] for _, r in ev.evaluations]
    thr = THRESHOLDS.get(env_id, env_file.solved_threshold)
    first = next((t for t, r in ev.evaluations if r["mean_return"] >= thr), None)
    return json.dumps(kw), seed, max(hist), hist[-1], first, time.time() - t0


def main():
    env_id, steps, n_seeds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    configs = [json.loads(c) for c in sys.argv[4:]]
    jobs = [(c, steps, s, env_id) for c in configs for s in range(n_seeds)]
    results: dict = {}
    with get_context("spawn").Pool(2) as pool:
        for key, seed, best, last, first, dt in pool.imap_unordered(run, jobs):
            results.setdefault(key, []).append((seed, round(best), round(last), first))
            if len(results[key]) == n_seeds:
                r = sorted(results[key])
                print(f"{key}: reached {sum(x[3] is not None for x in r)}/{n_seeds}  best {[x[1] for x in r]}  "
                      f"last {[x[2] for x in r]}  first {[x[3] for x in r]}", flush=True)


if __name__ == "__main__":
    main()
