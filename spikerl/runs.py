"""Run folders and logging: ``runs/{env}__{agent}__s{seed}__{time}/`` holds the resolved
config, a metrics file (JSON lines, flushed per row), checkpoints, the final model, a
summary and a learning-curve PNG; the same rows go to Weights & Biases (offline unless a
key is configured)."""
from __future__ import annotations

import json
import math
import netrc
import os
import time
from pathlib import Path

import yaml

PROJECT = "spikerl"


def run_name(env_id: str, agent: str, seed: int, when: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return f"{env_id.replace('/', '-')}__{agent}__s{seed}__{stamp}"


def wandb_mode() -> str:
    """``$WANDB_MODE`` if set; ``online`` when an API key is configured; else ``offline``."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def _clean(value):
    """JSON-safe: numpy scalars to Python, non-finite floats to None."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class RunLogger:
    """Writes ``metrics.jsonl`` rows (and W&B history) for one run."""

    def __init__(self, run_dir: Path, config: dict, *, use_wandb: bool, group: str, job_type: str, name: str,
                 resume_of: str | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self.t0 = time.time()
        self.wandb_run = None
        if use_wandb:
            import wandb

            self.wandb_run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", PROJECT), group=group, job_type=job_type,
                name=name + ("-resumed" if resume_of else ""), config=config, dir=str(self.run_dir),
                mode=wandb_mode(), reinit="finish_previous",
            )
            self.wandb_run.define_metric("global_step")
            self.wandb_run.define_metric("*", step_metric="global_step")

    def log(self, kind: str, step: int, **values) -> None:
        row = _clean({"type": kind, "step": int(step), "wall_time": time.time() - self.t0, **values})
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()
        if self.wandb_run is not None:
            flat = {f"{kind}/{k}": v for k, v in row.items() if isinstance(v, (int, float)) and k not in ("step", "type")}
            self.wandb_run.log({"global_step": int(step), **flat})

    def log_media(self, step: int, files: dict) -> None:
        """Log images (``.png``) and videos (``.gif``) under ``media/NAME`` to W&B; the files
        themselves stay in the run folder, listed in ``metrics.jsonl``."""
        files = {k: Path(v) for k, v in files.items() if Path(v).suffix in (".png", ".gif")}
        self.log("media", step, **{k: str(v.relative_to(self.run_dir)) if v.is_relative_to(self.run_dir) else str(v)
                                   for k, v in files.items()})
        if self.wandb_run is not None and files:
            import wandb

            row = {f"media/{k}": (wandb.Video(str(v), format="gif") if v.suffix == ".gif" else wandb.Image(str(v)))
                   for k, v in files.items()}
            self.wandb_run.log({"global_step": int(step), **row})

    def finish(self, summary: dict, model_path: Path | None = None) -> None:
        summary = _clean(summary)
        with open(self.run_dir / "summary.json", "w") as f:
            json.dump(summary, f, indent=2)
        self.metrics.flush()
        self.metrics.close()
        try:
            plot_learning_curve(self.run_dir)
        except ImportError:
            pass
        if self.wandb_run is not None:
            for k, v in summary.items():
                if isinstance(v, (int, float, str)):
                    self.wandb_run.summary[k] = v
            if model_path is not None and Path(model_path).exists():
                import wandb

                art = wandb.Artifact(name=f"model-{self.wandb_run.id}", type="model")
                art.add_file(str(model_path))
                self.wandb_run.log_artifact(art)
            self.wandb_run.finish()
            self.wandb_run = None


def read_metrics(run_dir: Path) -> list[dict]:
    rows = []
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a row cut by a kill: the rows before it stand
                    break
    return rows


def plot_learning_curve(run_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = read_metrics(run_dir)
    eps = [(r["step"], r["return"]) for r in rows if r["type"] == "episode"]
    evs = [(r["step"], r["mean_return"], r.get("std_return", 0.0)) for r in rows if r["type"] == "eval"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if eps:
        s, r = map(np.array, zip(*eps))
        k = max(1, min(20, len(r) // 5))
        ax.plot(s, r, ".", alpha=0.15, color="tab:blue", markersize=2)
        ax.plot(s[k - 1 :], np.convolve(r, np.ones(k) / k, mode="valid"), color="tab:blue", label=f"episodes (mean of {k})")
    if evs:
        s, m, sd = map(np.array, zip(*evs))
        ax.errorbar(s, m, yerr=sd, color="tab:red", marker="o", capsize=2, label="evaluation")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(Path(run_dir).name, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(run_dir) / "learning_curve.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_config(run_dir: Path, config: dict) -> None:
    with open(Path(run_dir) / "config.yaml", "w") as f:
        yaml.safe_dump(_clean(config), f, sort_keys=False)


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml)")
    with open(path) as f:
        return yaml.safe_load(f)
