"""The default agent on the benchmark tasks, against SB3 PPO, final policies only.

Every cell trains one agent with one seed for the env file's budget (``envs/ID.yaml``), then
scores the **final** policy over 100 episodes (evaluation seeds 50_000+, the same for every
agent) in **both** sampled and deterministic modes with spikerl's one evaluation protocol
(SB3's ``evaluate_policy``); return, latency and energy of a mode come from the same episodes.
``fts-snn`` is ``SpikingAgent(env_id, seed=s)`` with no other argument (agents/fts-snn.yaml is
empty), ``fts-snn-td`` the online actor-critic, ``ppo`` the RL Zoo's PPO.

    python benchmarks/default_agent.py --envs CartPole-v1 --agents fts-snn,ppo --seeds 100-109 --out runs/default
    python benchmarks/default_agent.py --envs CartPole-v1 --agents fts-snn --seeds 100-109 --out runs/ablation \\
        --set ratio=output --tag ratio-output            # an ablation: one lever switched
    python benchmarks/default_agent.py --report runs/default [--md results/default/table.md]
    python benchmarks/default_agent.py --ablation results/default/cells runs/ablation   # lever rows vs the default

A finished cell (its JSON exists) is never redone, so an interrupted run continues.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

EVAL_SEED = 50_000
EVAL_EPISODES = 100


def seed_ranges(seeds) -> str:
    """Sorted seeds as runs: [100, 101, 102, 103, 109] -> "100-103, 109" (the inverse of :func:`parse_seeds`)."""
    seeds = sorted(seeds)
    runs: list[list[int]] = []
    for s in seeds:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


def parse_seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    return out


def parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def agent_label(agent: str) -> str:
    """An agent name, or the stem of an agent YAML path (a tuned agent: runs/tune/fts-snn-CartPole-v1.yaml)."""
    return Path(agent).stem if agent.endswith((".yaml", ".yml")) else agent


def cell_path(out: Path, env_id: str, agent: str, tag: str, seed: int) -> Path:
    return out / f"{env_id.replace('/', '-')}__{agent_label(agent)}{'__' + tag if tag else ''}__s{seed}.json"


def run_cell(cell: dict) -> dict:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"  # one core per worker
    from spikerl.config import load_agent_file, load_env_file, resolve_hyperparameters
    from spikerl.evaluation import evaluate_model
    from spikerl.train import build_model, n_parameters, save_model

    _, agent_file, _ = load_agent_file(cell["agent"])
    env_file, _ = load_env_file(cell["env"])
    own = cell["overrides"] if agent_file.kind != "sb3" else {}
    hp = resolve_hyperparameters(agent_file, env_file, own)
    model = build_model(agent_file.kind, agent_file, env_file, hp, cell["seed"])
    steps = cell["steps"] or env_file.budget
    t0 = time.time()
    model.learn(steps)
    wall = time.time() - t0
    path = Path(cell["path"])
    save_model(model, agent_file.kind, path.with_suffix(".zip" if agent_file.kind == "sb3" else ".spk"))
    res = {"env": cell["env"], "agent": agent_label(cell["agent"]), "agent_file": cell["agent"], "tag": cell["tag"],
           "seed": cell["seed"], "steps": steps,
           "overrides": own, "wall_time": wall, "steps_per_second": steps / wall,
           "n_parameters": n_parameters(model, agent_file.kind), "threshold": env_file.solved_threshold}
    modes = [("sampled", False, None), ("deterministic", True, None)]
    if agent_file.kind == "spiking":
        default = res["deterministic_outputs"] = model.config.deterministic_outputs
        modes = [("sampled", False, None)] + spiking_modes(default)
    for mode, det, outputs in modes:
        if outputs is not None:
            model.config.deterministic_outputs = outputs
        res[mode] = evaluate_model(model, env_file.id, n_episodes=EVAL_EPISODES, seed=EVAL_SEED, deterministic=det,
                                   make_kwargs=env_file.make_kwargs)
    path.write_text(json.dumps(res))
    return res


SPIKING_MODES = (("vote", "vote"), ("threshold_net", "threshold"), ("regular_net", "regular"))
"""A spiking cell's named deterministic modes (key, ``deterministic_outputs``) besides the
sampled one, in the order they are evaluated: the vote draws from the predict generator, so
its figures depend on what ran before it, and every cell runs sampled, vote, threshold, then
the regular network (added later: deterministic, it draws nothing that a later mode reads)."""
MODE_OUTPUTS = dict(SPIKING_MODES)
OUTPUT_KEYS = {out: key for key, out in SPIKING_MODES}


def spiking_modes(default: str) -> list:
    """``(key, deterministic, outputs)`` of a spiking cell's deterministic evaluations: the
    agent's own deterministic mode is ``deterministic``, the others keep their keys."""
    modes = [("deterministic" if out == default else key, True, out) for key, out in SPIKING_MODES]
    if default not in OUTPUT_KEYS:  # median: its own, after the named ones
        modes.append(("deterministic", True, default))
    return modes


def det_outputs(cell: dict) -> str:
    """What a spiking cell's ``deterministic`` figures are (cells written before the key: the vote)."""
    return cell.get("deterministic_outputs", "vote")


MODE_KEYS = ("sampled", "deterministic", "vote", "threshold_net", "regular_net")
"""Every mode a cell can hold (ANN cells: the first two)."""
OUTPUT_NAMES = {"vote": "vote of 15", "threshold": "threshold network", "median": "median outputs",
                "regular": "regular network"}


def mode_name(cell: dict, mode: str, spiking: bool) -> str:
    """A row's mode as tables print it: the spiking agent's deterministic row names its kind."""
    if mode in MODE_OUTPUTS:
        return OUTPUT_NAMES[MODE_OUTPUTS[mode]]
    if mode == "deterministic" and spiking:
        return f"deterministic: {OUTPUT_NAMES.get(det_outputs(cell), det_outputs(cell))}"
    return mode


def reevaluate(path: Path) -> None:
    """Score a finished spiking cell's saved model (``.spk`` beside it) in each named
    deterministic mode the cell lacks (:data:`SPIKING_MODES`); its other figures stand. Cells
    written before ``deterministic_outputs`` was recorded had the vote as their own mode. Every
    mode is scored on a freshly loaded model, so a vote scored here draws from the saved
    predict generator, not from the one the cell's earlier modes had advanced."""
    from spikerl.config import load_env_file
    from spikerl.evaluation import evaluate_model
    from spikerl.serialization import load_model

    res = json.loads(path.read_text())
    model_path = path.with_suffix(".spk")
    res["deterministic_outputs"] = det_outputs(res)
    todo = [(key, out) for key, _, out in spiking_modes(res["deterministic_outputs"]) if key not in res]
    if not model_path.exists() or not todo:
        return
    env_file, _ = load_env_file(res["env"])
    for key, outputs in todo:
        model = load_model(model_path, deterministic_outputs=outputs)
        res[key] = evaluate_model(model, env_file.id, n_episodes=EVAL_EPISODES, seed=EVAL_SEED, deterministic=True,
                                  make_kwargs=env_file.make_kwargs)
    path.write_text(json.dumps(res))
    print(f"  re-evaluated {path.name}: " + ", ".join(f"{OUTPUT_NAMES[out]} {res[key]['mean_return']:.1f}"
                                                      for key, out in todo), file=sys.stderr, flush=True)


def relabel(cell: dict, outputs: str) -> dict:
    """A spiking cell as an agent whose ``deterministic_outputs`` is ``outputs`` would have
    written it: the same figures, ``outputs``'s under ``deterministic`` and the cell's former
    deterministic mode under its own key (:func:`spiking_modes`). The training and every
    figure are unchanged; the modes are scored in the same order either way, and only the vote
    draws from the generator. ``outputs`` must be among the cell's modes."""
    figures = {out: mode_result(cell, out) for _, out in SPIKING_MODES}
    if figures.get(outputs) is None:
        raise ValueError(f"cell {cell['env']} {cell['agent']} s{cell['seed']} has no {outputs!r} figures "
                         "(--reevaluate scores them from the saved model)")
    new = {k: v for k, v in cell.items() if k not in MODE_KEYS or k == "sampled"}
    new["deterministic_outputs"] = outputs
    for key, _, out in spiking_modes(outputs):
        if figures.get(out) is not None:
            new[key] = figures[out]
    return new


def run(envs, agents, seeds, out: Path, steps, overrides, tag, workers) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cells = [dict(env=e, agent=a, seed=s, steps=steps, overrides=overrides, tag=tag,
                  path=str(cell_path(out, e, a, tag, s))) for e in envs for a in agents for s in seeds]
    todo = [c for c in cells if not Path(c["path"]).exists()]
    print(f"{out}: {len(cells)} cells, {len(cells) - len(todo)} done, {len(todo)} to run", file=sys.stderr)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1)), mp_context=ctx) as pool:
        futures = {pool.submit(run_cell, c): c for c in todo}
        for fut in as_completed(futures):
            r = fut.result()
            print(f"  {r['env']} {r['agent']}{' ' + r['tag'] if r['tag'] else ''} s{r['seed']}: "
                  f"sampled {r['sampled']['mean_return']:.1f}, deterministic {r['deterministic']['mean_return']:.1f} "
                  f"({r['steps_per_second']:.0f} steps/s)", file=sys.stderr, flush=True)


def iqm(x) -> float:
    x = np.sort(np.asarray(x, float))
    n = len(x)
    lo, hi = int(np.floor(0.25 * n)), int(np.ceil(0.75 * n))
    return float(x[lo:hi].mean()) if hi > lo else float(x.mean())


_FACTS: dict = {}


def agent_facts(env_id: str, agent: str, overrides: dict) -> dict:
    """What the energy model needs of an agent's network (built untrained, not learnt)."""
    key = (env_id, agent, json.dumps(overrides, sort_keys=True))
    if key not in _FACTS:
        from spikerl.config import load_agent_file, load_env_file, resolve_hyperparameters
        from spikerl.energy import network_facts
        from spikerl.train import build_model

        _, agent_file, _ = load_agent_file(agent)
        env_file, _ = load_env_file(env_id)
        own = overrides if agent_file.kind != "sb3" else {}
        model = build_model(agent_file.kind, agent_file, env_file, resolve_hyperparameters(agent_file, env_file, own), 0)
        _FACTS[key] = network_facts(model)
    return _FACTS[key]


def mode_energy(facts: dict, mode: str, fig: dict, det: str = "vote") -> tuple[dict, dict]:
    """Operations and energy (both tables) of one decision in ``mode`` from a cell's figures
    (``det``: what the cell's ``deterministic`` mode is)."""
    from spikerl.energy import decision_energy

    return decision_energy(facts, fig, sampled=mode == "sampled",
                           outputs=det if mode == "deterministic" else MODE_OUTPUTS.get(mode))


def per_seed(value: float) -> str:
    """A seed's mean return: whole numbers, two decimals on tasks whose returns are below 10
    (FrozenLake's 0..1 would all read 0 or 1)."""
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}"


def mode_figures(env: str, rs: list, mode: str):
    """One mode of one agent's cells on ``env``: per-seed means, seeds at the threshold, mean
    per-decision figures, operations and energy (both tables)."""
    thr = rs[0]["threshold"]
    means = [r[mode]["mean_return"] for r in rs]
    ok = sum(m >= thr for m in means) if thr is not None else "-"
    e = {k: np.mean([r[mode].get(k, 0.0) for r in rs]) for k in
         ("latency", "spikes_per_decision", "sops_per_decision", "macs_per_decision")}
    facts = agent_facts(env, rs[0].get("agent_file", rs[0]["agent"]), rs[0]["overrides"])
    ops, en = mode_energy(facts, mode, e, det_outputs(rs[0]))
    return means, ok, e, ops, en


AGENT_ORDER = ("fts-snn", "fts-snn-td", "ppo", "a2c", "dqn")


def short_steps(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1000:g}k"


def headline(out: Path) -> str:
    """The README's compact table from a run folder's cells (untagged rows): per task and agent
    one line per mode, its return, latency, work and CMOS energy from the same episodes.
    Agents in :data:`AGENT_ORDER` first, then any other (a tuned agent's file name) by name."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    rows = [r for r in rows if not r["tag"]]
    order = {a: i for i, a in enumerate(AGENT_ORDER)}

    def rank(agent: str, env: str):  # a tuned agent's file is AGENT-ENV.yaml: ranked as AGENT
        suffix = "-" + env.replace("/", "-")
        base = agent[: -len(suffix)] if agent.endswith(suffix) else agent
        return order.get(base, len(order)), agent

    lines = ["| task (steps), threshold | agent (seeds) | mode | final return IQM | seeds >= threshold "
             "| latency (steps) | per decision | energy / decision, 45 nm CMOS (nJ) |",
             "|---|---|---|---|---|---|---|---|"]
    for env in sorted({r["env"] for r in rows}):
        first_env, task_steps = True, None
        for agent in sorted({r["agent"] for r in rows if r["env"] == env}, key=lambda a: rank(a, env)):
            rs = sorted((r for r in rows if r["env"] == env and r["agent"] == agent), key=lambda r: r["seed"])
            if not rs:
                continue
            steps = "/".join(short_steps(s) for s in sorted({r["steps"] for r in rs}))
            if first_env:
                task_steps = steps
            task = f"{env} ({steps}), {rs[0]['threshold']:g}" if first_env else ""
            first_env = False
            who = f"{agent} ({seed_ranges(r['seed'] for r in rs)}{'' if steps == task_steps else ', ' + steps + ' steps'})"
            for mode in MODE_KEYS:
                if not all(mode in r for r in rs):
                    continue
                means, ok, e, ops, en = mode_figures(env, rs, mode)
                name = mode_name(rs[0], mode, not e["macs_per_decision"])
                work = (f"{e['macs_per_decision']:,.0f} MACs" if e["macs_per_decision"] else
                        f"{e['spikes_per_decision']:,.0f} spikes, {e['sops_per_decision']:,.0f} syn. ops")
                lines.append(f"| {task} | {who} | {name} | {iqm(means):.1f} | {ok}/{len(rs)} | {e['latency']:.1f} "
                             f"| {work} | {en['45 nm CMOS']['total'] / 1000:.1f} |")
                task, who = "", ""
    return "\n".join(lines)


def readme_markers(block: str = "headline") -> tuple[str, str]:
    """The lines that enclose a written table in the README."""
    return f"<!-- {block} table: start -->", f"<!-- {block} table: end -->"


README_START, README_END = readme_markers()


def write_readme_table(readme: Path, table: str, command: str, block: str = "headline") -> None:
    """Replace the README's block between the ``block`` markers (:func:`readme_markers`) by
    ``table`` and the command that wrote it."""
    start, end = readme_markers(block)
    text = readme.read_text()
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"{readme}: needs one {start} and one {end} line")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    readme.write_text(f"{head}{start}\n<!-- written by: {command} -->\n\n{table}\n\n{end}{tail}")


def report(out: Path) -> str:
    from spikerl.energy import breakdown_markdown, sources_markdown

    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    lines = ["Every row: one mode, its return, latency, spikes, operations and energy from the same 100 episodes "
             "per seed (final policies). Energy per decision counts every operation (see the breakdown and sources "
             "below); Loihi prices spiking agents only. MACs: an ANN's forward pass; a spiking agent's encoder "
             "(its random directions, computed on the host).", ""]
    breakdown = []
    for env in sorted({r["env"] for r in rows}):
        lines += [f"### {env}", "",
                  "| agent | seeds | steps | mode | final return IQM | seeds >= threshold | per seed (100 episodes each) "
                  "| latency (steps) | spikes / decision | syn. ops / decision | MACs / decision "
                  "| energy / decision, 45 nm CMOS (nJ) | energy / decision, Loihi (nJ) | train steps/s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        groups: dict = {}
        for r in rows:
            if r["env"] == env:
                groups.setdefault((r["agent"], r["tag"]), []).append(r)
        for (agent, tag), rs in sorted(groups.items()):
            rs.sort(key=lambda r: r["seed"])
            name = agent + (f" [{tag}]" if tag else "")
            for mode in MODE_KEYS:
                if not all(mode in r for r in rs):
                    continue
                means, ok, e, ops, en = mode_figures(env, rs, mode)
                nj = {k: ("-" if v is None else f"{v['total'] / 1000:.3f}") for k, v in en.items()}
                lines.append(
                    f"| {name} | {seed_ranges(r['seed'] for r in rs)} ({len(rs)}) | {rs[0]['steps']:,} "
                    f"| {mode_name(rs[0], mode, not e['macs_per_decision'])} | {iqm(means):.1f} "
                    f"| {ok}/{len(rs)} | {', '.join(per_seed(m) for m in means)} | {e['latency']:.2f} "
                    f"| {e['spikes_per_decision']:.1f} | {e['sops_per_decision']:.0f} | {ops['macs']:,.0f} "
                    f"| {nj['45 nm CMOS']} | {nj['Loihi']} | {np.mean([r['steps_per_second'] for r in rs]):.0f} |")
                if env == "CartPole-v1" and not tag and agent in ("fts-snn", "ppo") and mode in ("sampled", "deterministic"):
                    breakdown.append((f"{agent}, {mode}", ops, en))
        lines.append("")
    if breakdown:
        lines += ["### Energy per decision by operation (CartPole-v1, means over the rows above)", "",
                  breakdown_markdown(breakdown), "Per-operation figures:", "", sources_markdown()]
    return "\n".join(lines)


def mode_result(cell: dict, outputs: str) -> dict | None:
    """A spiking cell's figures in a named mode (``sampled`` or a ``deterministic_outputs``),
    whichever of them was the cell's own deterministic mode; None if the cell lacks it."""
    if outputs == "sampled":
        return cell["sampled"]
    if det_outputs(cell) == outputs:
        return cell["deterministic"]
    return cell.get(OUTPUT_KEYS[outputs])


ABLATION_MODES = (("sampled", "sampled"), ("regular", "regular network"), ("threshold", "threshold network"),
                  ("vote", "vote of 15"))


def ablation(default: Path, levers: Path, agent: str = "fts-snn", heading: str = "lever switched off") -> str:
    """Each lever switched off alone against the default, per task: one row per tag of
    ``levers`` (its overrides, and the default's value of each), and the default's untagged
    cells of ``default`` on the same seeds; IQM of the seeds' means, seeds at the threshold and
    each seed's mean, per mode (:data:`ABLATION_MODES` that every cell has). A lever's seeds
    must all have a default cell (else a clear error). A screen (candidates switched on, on
    tuning seeds) is the same table under its own ``heading``."""
    from spikerl.agent import SpikingConfig

    defaults = SpikingConfig()
    base = {(r["env"], r["seed"]): r for r in map(json.loads, (p.read_text() for p in sorted(default.glob("*.json"))))
            if r["agent"] == agent and not r["tag"]}
    groups: dict = {}
    for r in (json.loads(p.read_text()) for p in sorted(levers.glob("*.json"))):
        if r["agent"] == agent and r["tag"]:
            groups.setdefault(r["env"], {}).setdefault(r["tag"], []).append(r)
    every = [r for g in groups.values() for rs in g.values() for r in rs]
    every += [base[r["env"], r["seed"]] for r in every if (r["env"], r["seed"]) in base]
    modes = [(out, name) for out, name in ABLATION_MODES if all(mode_result(r, out) is not None for r in every)]
    lines = [f"| task (steps), seeds | {heading}: setting (default) | "
             + " | ".join(f"{name}: IQM (seeds >= threshold; per seed)" for _, name in modes) + " |",
             "|---|---|" + "---|" * len(modes)]

    def cells_row(task: str, lever: str, rs: list, versus: list | None = None) -> str:
        """``versus``: the default's cells on the same seeds, when the default row has more."""
        thr = rs[0]["threshold"]
        out = []
        for outputs, _ in modes:
            means = [mode_result(r, outputs)["mean_return"] for r in rs]
            ok = sum(m >= thr for m in means)
            vs = (f"; default {iqm([mode_result(r, outputs)['mean_return'] for r in versus]):.1f}"
                  if versus else "")
            out.append(f"{iqm(means):.1f} ({ok}/{len(rs)}; {', '.join(per_seed(m) for m in means)}{vs})")
        return f"| {task} | {lever} | " + " | ".join(out) + " |"

    for env in sorted(groups):
        seeds = sorted({r["seed"] for rs in groups[env].values() for r in rs})
        missing = [s for s in seeds if (env, s) not in base]
        if missing:
            raise ValueError(f"{default}: no default {agent} cell on {env} for seeds {missing}")
        rs = [base[env, s] for s in seeds]
        task = f"{env} ({short_steps(rs[0]['steps'])}), {seed_ranges(seeds)}"
        # base cells trained under an earlier default record what differs from today's
        was = rs[0]["overrides"]
        if any(r["overrides"] != was for r in rs):
            raise ValueError(f"{default}: the default {agent} cells on {env} differ in overrides")
        lines.append(cells_row(task, "none (the default" + "".join(f"; {k}={v}" for k, v in was.items()) + ")", rs))
        names = {tag: ", ".join(f"{k}={v} ({was.get(k, getattr(defaults, k, '?'))})"
                                for k, v in rs[0]["overrides"].items() if k not in was or was[k] != v) or tag
                 for tag, rs in groups[env].items()}
        for tag, rs in sorted(groups[env].items()):
            rs.sort(key=lambda r: r["seed"])
            shared = list(names.values()).count(names[tag]) > 1  # the same setting from other code: name the set
            own = [r["seed"] for r in rs]
            lines.append(cells_row("", names[tag] + (f" [{tag}]" if shared else ""), rs,
                                   [base[env, s] for s in own] if own != seeds else None))
    return "\n".join(lines)


ANNS = ("ppo", "a2c", "dqn")
"""The ANN baselines the spiking agent is compared with, each in both of its modes."""


def rliable_report(cells: Path, out: Path, envs=("CartPole-v1", "Acrobot-v1"), spiking: str = "fts-snn",
                   reps: int = 2000) -> str:
    """rliable's aggregate IQM / optimality gap, performance profile and probability of
    improvement over ``envs`` (normalised: 0 random policy, 1 solved threshold), written to
    ``out`` (rliable.md and two figures). The spiking agent in both modes against every ANN
    of :data:`ANNS` with cells on every task, in the same mode and sampled vs deterministic;
    an agent's seeds must be the spiking agent's on every task (else a clear error)."""
    from spikerl.stats import aggregate, improvement_figure, normalise, performance_profile, probability_of_improvement

    rows = [json.loads(p.read_text()) for p in sorted(cells.glob("*.json")) if not json.loads(p.read_text())["tag"]]
    spiking_det = {det_outputs(r) for r in rows if r["agent"] == spiking and r["env"] in envs}
    if len(spiking_det) > 1:
        raise ValueError(f"{cells}: {spiking}'s cells mix deterministic modes {sorted(spiking_det)}")
    det = spiking_det.pop() if spiking_det else "vote"
    name = lambda a, m: f"{a} {det if a == spiking and m == 'deterministic' else m}"  # noqa: E731
    anns = [a for a in ANNS if all(any(r["env"] == e and r["agent"] == a for r in rows) for e in envs)]
    if not anns or not all(any(r["env"] == e and r["agent"] == spiking for r in rows) for e in envs):
        raise ValueError(f"{cells}: needs {spiking} and at least one of {ANNS} on every task of {envs}")
    scores, seeds, steps = {}, {}, {}
    for agent in [spiking, *anns]:
        for mode in ("sampled", "deterministic"):
            cols = []
            for env in envs:
                rs = sorted((r for r in rows if r["env"] == env and r["agent"] == agent), key=lambda r: r["seed"])
                seeds.setdefault(env, [r["seed"] for r in rs])
                if [r["seed"] for r in rs] != seeds[env]:
                    raise ValueError(f"{agent} on {env} has seeds {[r['seed'] for r in rs]}, "
                                     f"{spiking} has {seeds[env]}")
                cols.append(normalise([r[mode]["mean_return"] for r in rs], env, rs[0]["threshold"]))
                steps[agent, env] = rs[0]["steps"]
            scores[name(agent, mode)] = np.stack(cols, axis=1)
    agg = aggregate(scores, reps=reps)
    pairs = [pair for ann in anns for pair in
             ((name(spiking, "sampled"), name(ann, "sampled")), (name(spiking, "deterministic"), name(ann, "deterministic")),
              (name(spiking, "sampled"), name(ann, "deterministic")))]
    poi = probability_of_improvement(scores, pairs, reps=reps)
    out.mkdir(parents=True, exist_ok=True)
    performance_profile(scores, out / "performance_profile.png", f"{', '.join(envs)}: final policies, seeds "
                        f"{min(min(v) for v in seeds.values())}-{max(max(v) for v in seeds.values())}", reps=reps)
    improvement_figure(poi, out / "probability_of_improvement.png")
    f = lambda t: f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"  # noqa: E731
    lines = [f"Tasks: {', '.join(envs)}; runs: seeds {', '.join(f'{e} {v[0]}-{v[-1]}' for e, v in seeds.items())}; "
             "score = (final return - random policy) / (solved threshold - random policy), random policy measured "
             "over 100 seeded episodes (spikerl.stats.random_score). 95% stratified-bootstrap intervals (rliable, "
             f"{reps} resamples). Training steps: " + "; ".join(
                 f"{a} " + ", ".join(f"{e} {steps[a, e]:,}" for e in envs) for a in [spiking, *anns]) + ".", "",
             "| agent, mode | IQM | median | mean | optimality gap |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {f(v['iqm'])} | {f(v['median'])} | {f(v['mean'])} | {f(v['optimality_gap'])} |"
              for a, v in agg.items()]
    lines += ["", "| X | Y | P(X > Y) |", "|---|---|---|"]
    lines += [f"| {k.split(',')[0]} | {k.split(',')[1]} | {f(v)} |" for k, v in poi.items()]
    lines += ["", "![performance profile](performance_profile.png)", "",
              "![probability of improvement](probability_of_improvement.png)", ""]
    text = "\n".join(lines)
    (out / "rliable.md").write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", default="CartPole-v1")
    ap.add_argument("--agents", default="fts-snn,ppo")
    ap.add_argument("--seeds", default="100-109")
    ap.add_argument("--steps", type=int, default=None, help="default: the env file's budget")
    ap.add_argument("--out", default="runs/default")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="hyperparameter override for the spiking agents (an ablation)")
    ap.add_argument("--tag", default="", help="name of the override set (part of the cell names)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--report", metavar="DIR", help="print the table of a finished run folder")
    ap.add_argument("--ablation", nargs=2, metavar=("DEFAULT", "LEVERS"), help="the ablation table: the tagged "
                    "cells of LEVERS (one lever switched off each) against the untagged default cells of DEFAULT on "
                    "the same seeds (with --md, --readme)")
    ap.add_argument("--screen", nargs=2, metavar=("DEFAULT", "CANDIDATES"), help="the same table for candidate "
                    "settings screened on tuning seeds (tagged cells of CANDIDATES, one setting switched on each)")
    ap.add_argument("--relabel", nargs=2, metavar=("DIR", "OUTPUTS"), help="file the spiking cells of DIR as "
                    "written by an agent whose predict(deterministic=True) is OUTPUTS (a mode they hold)")
    ap.add_argument("--md", help="with --report, --ablation or --screen: also write the table to this file")
    ap.add_argument("--rliable", metavar="DIR", help="with --report: rliable statistics and figures into DIR")
    ap.add_argument("--readme", metavar="README", help="with --report: write the compact table into README "
                    "between its <!-- BLOCK table: start/end --> markers")
    ap.add_argument("--readme-block", default="headline", metavar="BLOCK", help="which README block (default headline)")
    ap.add_argument("--reevaluate", metavar="DIR", help="score the saved spiking models of a run folder's cells in "
                    "each named deterministic mode their cells lack")
    args = ap.parse_args()
    if args.reevaluate:
        for path in sorted(Path(args.reevaluate).glob("*.json")):
            reevaluate(path)
        return
    if args.relabel:
        folder, outputs = args.relabel
        for path in sorted(Path(folder).glob("*.json")):
            cell = json.loads(path.read_text())
            if cell["agent"].startswith("fts-snn") and det_outputs(cell) != outputs:
                path.write_text(json.dumps(relabel(cell, outputs)))
        return
    if args.ablation or args.screen:
        text = (ablation(Path(args.ablation[0]), Path(args.ablation[1])) if args.ablation else
                ablation(Path(args.screen[0]), Path(args.screen[1]), heading="candidate switched on"))
        print(text)
        if args.md:
            Path(args.md).write_text(text + "\n")
        if args.readme:
            write_readme_table(Path(args.readme), text,
                               "python benchmarks/default_agent.py " + " ".join(sys.argv[1:]), args.readme_block)
        return
    if args.report:
        text = report(Path(args.report))
        print(text)
        if args.md:
            Path(args.md).parent.mkdir(parents=True, exist_ok=True)
            Path(args.md).write_text(text + "\n")
        if args.rliable:
            print(rliable_report(Path(args.report), Path(args.rliable)))
        if args.readme:
            write_readme_table(Path(args.readme), headline(Path(args.report)),
                               "python benchmarks/default_agent.py " + " ".join(sys.argv[1:]), args.readme_block)
        return
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set needs KEY=VALUE, got {item!r}")
        overrides[key] = parse_value(value)
    if overrides and not args.tag:
        args.tag = "-".join(f"{k}-{v}" for k, v in overrides.items())
    run(args.envs.split(","), args.agents.split(","), parse_seeds(args.seeds), Path(args.out), args.steps, overrides,
        args.tag, args.workers)
    print(report(Path(args.out)))


if __name__ == "__main__":
    main()
