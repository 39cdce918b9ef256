"""The ``spikerl`` command: train, eval, show, export, tune, list, bench, report.

    spikerl train --agent fts-snn --env CartPole-v1 --steps 100000 --seed 0
    spikerl eval runs/CartPole-v1__fts-snn__s0__.../ --episodes 20
    spikerl show runs/CartPole-v1__fts-snn__s0__.../ --out show/
    spikerl export runs/CartPole-v1__fts-snn__s0__.../ --format c --out policy_c/
    spikerl tune --agent fts-snn --env CartPole-v1 --trials 20 --steps 50000 --seeds 0,1
    spikerl list
    spikerl bench --agents fts-snn,ppo --envs CartPole-v1 --seeds 3 --out runs/bench
    spikerl report runs/bench
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError, list_agents, list_envs, load_agent_file, parse_overrides


def _train(args) -> int:
    from .train import install_signal_handlers, train

    install_signal_handlers()
    if args.resume is None and (args.agent is None or args.env is None):
        raise ConfigError("train needs --agent and --env (or --resume RUNDIR)")
    train(args.agent, args.env, steps=args.steps, seed=args.seed, n_envs=args.n_envs, out=args.out,
          overrides=parse_overrides(args.set), use_wandb=args.wandb, resume=args.resume, progress=args.progress,
          stop_at=args.stop_at, media=args.media)
    return 0


def _load_for_eval(target: Path, env_id: str | None, best: bool = False):
    """A run folder (its best model with ``best``; else its final model, else its last
    checkpoint) or a model file."""
    from .runs import read_config

    if best and not target.is_dir():
        raise ConfigError(f"{target}: --best needs a run folder")
    if target.is_dir():
        cfg = read_config(target)
        kind, env_id = cfg["kind"], env_id or cfg["env"]
        ext = "zip" if kind == "sb3" else "spk"
        if best:
            path = target / f"best_model.{ext}"
            if not path.exists():
                raise FileNotFoundError(f"{target}: no best_model.{ext} (written at the first evaluation)")
        else:
            path = target / f"model.{ext}"
            if not path.exists():
                path = target / "checkpoints" / f"last.{ext}"
        if not path.exists():
            raise FileNotFoundError(f"{target}: no model.{ext} and no checkpoints/last.{ext}")
        if kind == "sb3":
            from .baselines import load_sb3

            return load_sb3(cfg["algo"], path), env_id
        from .serialization import load_model

        return load_model(path), env_id
    if target.suffix == ".zip":
        raise ConfigError(f"{target}: evaluate an SB3 model through its run folder (the folder says which algorithm)")
    from .serialization import load_model

    model = load_model(target)
    env_id = env_id or model.env_id
    if env_id is None:
        raise ConfigError(f"{target} does not record its env; pass --env ID")
    return model, env_id


def _eval(args) -> int:
    from .evaluation import evaluate_model, make_env

    model, env_id = _load_for_eval(Path(args.target), args.env, args.best)
    if args.render:
        env = make_env(env_id, render_mode="ansi" if env_id.startswith("spikerl/") else "human")
        for ep in range(args.episodes):
            obs, _ = env.reset(seed=10_000 + ep)
            done, ret = False, 0.0
            while not done:
                action, _ = model.predict(obs, deterministic=args.deterministic)
                obs, r, term, trunc, _ = env.step(action)
                ret += float(r)
                done = term or trunc
                frame = env.render()
                if isinstance(frame, str):
                    print(frame)
            print(f"episode {ep}: return {ret:.1f}")
        return 0
    res = evaluate_model(model, env_id, n_episodes=args.episodes, deterministic=args.deterministic)
    res.pop("returns")
    print(json.dumps({"env": env_id, **{k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}}, indent=2))
    return 0


def _show(args) -> int:
    from .show import show

    model, env_id = _load_for_eval(Path(args.target), args.env, args.best)
    target = Path(args.target)
    out = Path(args.out) if args.out else (target / "show" if target.is_dir() else target.with_name(target.stem + "_show"))
    written = show(model, env_id, out, episodes=args.episodes, seed=args.seed, deterministic=args.deterministic,
                   n_rasters=args.rasters, video=args.video, max_frames=args.max_frames)
    print((out / "show.json").read_text())
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def _export(args) -> int:
    from .export import export_c, footprint_markdown

    if args.format != "c":
        raise ConfigError(f"--format {args.format!r}: only 'c' is supported")
    model, _ = _load_for_eval(Path(args.target), None, args.best)
    report = export_c(model, args.out, name=args.name, weights=args.weights, learn=args.learn)
    print(footprint_markdown(report))
    print(f"wrote {', '.join(report['files'])}, footprint.md and footprint.json to {args.out}")
    return 0


def _tune(args) -> int:
    from .tune import tune

    res = tune(args.agent, args.env, trials=args.trials, steps=args.steps,
               seeds=[int(x) for x in args.seeds.split(",")], storage=args.storage, study_name=args.study,
               space=args.space, out=args.out, eval_episodes=args.eval_episodes, use_wandb=args.wandb)
    print(json.dumps(res, indent=2))
    return 0


def _list(args) -> int:
    print("agents:")
    for name, path in list_agents().items():
        try:
            _, af, _ = load_agent_file(path)
            desc = f"[{af.kind}{'/' + af.algo if af.algo else ''}] {af.description}"
        except ConfigError as exc:
            desc = f"(invalid: {exc})"
        print(f"  {name:<10} {desc}\n             {path}")
    print("envs (any registered Gymnasium id works too, with defaults from its spaces):")
    for env_id, path in list_envs().items():
        print(f"  {env_id:<28} {path}")
    return 0


def _bench(args) -> int:
    from .bench import run_bench
    from .train import install_signal_handlers

    install_signal_handlers()
    run_bench(agents=args.agents.split(","), envs=args.envs.split(","), seeds=args.seeds, steps=args.steps,
              workers=args.workers, out=args.out, use_wandb=args.wandb, ray_address=args.ray,
              eval_episodes=args.eval_episodes, overrides=parse_overrides(args.set))
    return 0


def _experiment(args) -> int:
    from .experiments import windy

    out = windy.run(args.seeds, args.out, args.steps, args.first_seed)
    print((out / "table.md").read_text())
    return 0


def _report(args) -> int:
    from .report import write_report

    path = write_report(Path(args.bench_dir), out=args.out)
    print(path.read_text())
    print(f"report written to {path} (figures beside it)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spikerl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one agent on one env into a run folder")
    t.add_argument("--agent", help="agent name (a file in agents/) or a YAML path")
    t.add_argument("--env", help="env id (a file in envs/ or any registered Gymnasium id)")
    t.add_argument("--steps", type=int, help="environment steps (default: the env's budget)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--n-envs", type=int, help="environments stepped together")
    t.add_argument("--out", default="runs", help="folder that receives the run folder")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter")
    t.add_argument("--wandb", action=argparse.BooleanOptionalAction, default=True,
                   help="log to Weights & Biases (offline unless a key is configured)")
    t.add_argument("--resume", metavar="RUNDIR", help="continue an interrupted run from its last checkpoint")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar")
    t.add_argument("--stop-at", type=float, help="stop when an evaluation's mean return reaches this")
    t.add_argument("--media", action=argparse.BooleanOptionalAction, default=True,
                   help="at the end, draw rasters and an episode video of the final policy (RUN_DIR/media, W&B)")
    t.set_defaults(fn=_train)

    e = sub.add_parser("eval", help="evaluate a run folder or model file")
    e.add_argument("target", metavar="RUN_OR_MODEL")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True)
    e.add_argument("--render", action="store_true", help="render each step (text for spikerl's envs)")
    e.add_argument("--env", help="env id, for a model file that does not record one")
    e.add_argument("--best", action="store_true",
                   help="the run's best model (best_model.*: the highest evaluation so far) instead of its final one")
    e.set_defaults(fn=_eval)

    sh = sub.add_parser("show", help="decision rasters, per-decision summaries and an episode video of a trained agent")
    sh.add_argument("target", metavar="RUN_OR_MODEL")
    sh.add_argument("--env", help="env id (default: the one the run or model records)")
    sh.add_argument("--episodes", type=int, default=1, help="episodes played (figures and video show the first)")
    sh.add_argument("--seed", type=int, default=0, help="reset seed of the first episode")
    sh.add_argument("--out", help="output folder (default: RUN_DIR/show, or MODEL_show beside a model file)")
    sh.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=False,
                    help="the agent's deterministic mode (default: sampled, the mode a chip runs)")
    sh.add_argument("--rasters", type=int, default=4, help="decisions drawn in the raster figure")
    sh.add_argument("--video", action=argparse.BooleanOptionalAction, default=True, help="write episode.gif")
    sh.add_argument("--max-frames", type=int, default=300, help="frames kept for the video")
    sh.add_argument("--best", action="store_true", help="the run's best model instead of its final one")
    sh.set_defaults(fn=_show)

    xp = sub.add_parser("export", help="write a trained spiking policy as a dependency-free C99 module")
    xp.add_argument("target", metavar="RUN_OR_MODEL")
    xp.add_argument("--format", default="c", help="c (the only one so far)")
    xp.add_argument("--out", required=True, help="folder for NAME.h, NAME.c and the footprint report")
    xp.add_argument("--name", default="spk_policy", help="file and symbol prefix")
    xp.add_argument("--weights", default="float", choices=["float", "int16", "int8"],
                    help="parameter storage: float, or integers with one stated scale per tensor")
    xp.add_argument("--learn", action="store_true",
                    help="also carry the online actor-critic rule, so the device keeps learning from its reward")
    xp.add_argument("--best", action="store_true", help="the run's best model instead of its final one")
    xp.set_defaults(fn=_export)

    tu = sub.add_parser("tune", help="Optuna search with the same budget for every agent; writes the best as agent YAML")
    tu.add_argument("--agent", required=True)
    tu.add_argument("--env", required=True)
    tu.add_argument("--trials", type=int, default=20, help="trials in the study (a continued study counts its own)")
    tu.add_argument("--steps", type=int, required=True, help="training steps per trial and seed")
    tu.add_argument("--seeds", default="0,1", help="tuning seeds, comma-separated (below 100: reporting seeds never tune)")
    tu.add_argument("--storage", help="Optuna storage URL shared by processes (default sqlite:///OUT/tune.db)")
    tu.add_argument("--study", help="study name (default AGENT-ENV-STEPSxSEEDS)")
    tu.add_argument("--space", help="search-space YAML (default spaces/AGENT.yaml)")
    tu.add_argument("--out", default="agents/tuned", help="folder for the tuned agent YAML and the trial log")
    tu.add_argument("--eval-episodes", type=int, default=20)
    tu.add_argument("--wandb", action=argparse.BooleanOptionalAction, default=True)
    tu.set_defaults(fn=_tune)

    ls = sub.add_parser("list", help="the agents and envs spikerl knows")
    ls.set_defaults(fn=_list)

    b = sub.add_parser("bench", help="train agents x envs x seeds in parallel, same budgets and evaluation")
    b.add_argument("--agents", default="fts-snn,ppo")
    b.add_argument("--envs", default="CartPole-v1")
    b.add_argument("--seeds", type=int, default=3)
    b.add_argument("--steps", type=int, help="steps per run (default: each env's budget)")
    b.add_argument("--workers", type=int, help="parallel worker processes (default: all cores)")
    b.add_argument("--out", default="runs/bench")
    b.add_argument("--eval-episodes", type=int, help="episodes per evaluation (default: the env's)")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override (spiking agents)")
    b.add_argument("--wandb", action=argparse.BooleanOptionalAction, default=True)
    b.add_argument("--ray", metavar="ADDRESS", help="run the grid as Ray tasks on this Ray cluster")
    b.set_defaults(fn=_bench)

    x = sub.add_parser("experiment", help="the windy grid-world experiment: first-to-spike vs ANN vs converted ANN")
    x.add_argument("name", choices=["windy"])
    x.add_argument("--seeds", type=int, default=3)
    x.add_argument("--steps", type=int, help="training steps per run (default: the env's budget)")
    x.add_argument("--out", default="runs/windy")
    x.add_argument("--first-seed", type=int, default=100,
                   help="seeds first-seed .. first-seed + seeds - 1 (default 100: the reporting seeds, which no tuning saw)")
    x.set_defaults(fn=_experiment)

    r = sub.add_parser("report", help="write a Markdown report with figures for a bench folder")
    r.add_argument("bench_dir")
    r.add_argument("--out", help="report folder (default: BENCH_DIR/report)")
    r.set_defaults(fn=_report)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"spikerl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
