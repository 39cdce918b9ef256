"""Energy per decision, every operation counted on both sides and priced with published
per-operation figures (DESIGN.md section 7).

Operation counts per decision (:func:`spiking_ops`, :func:`ann_ops`):

spiking network, one run of ``L`` steps (``L`` = latency, ``t* + 1``), ``N`` neurons of which
``N_in`` are inputs:
- ``synaptic_accumulates``: spikes x fan-out x kernel bases (the kernel's own count);
- ``neuron_updates``: ``L x (N - N_in)`` membrane updates (decay of the synaptic and
  feedback currents, plus the bias);
- ``nonlinearities``: one sigmoid per neuron update in the sampled mode (none in the
  threshold network, which compares ``u > 0``), plus the encoder's receptive fields (one
  exponential per input neuron and observation, population code);
- ``comparisons``: ``L x N`` (uniform < p, or u > 0);
- ``random_draws``: ``L x N + 1`` in the sampled mode (one per neuron-step and the tie
  uniform; none in the threshold network);
- ``spikes``: spikes sent (a neuromorphic chip pays a routing energy per spike).
A vote of ``K`` samples counts ``K`` runs; its recorded spikes and accumulates are already
the sums, its latency the slowest sample's, so its neuron-step counts are an upper bound.

ANN actor (SB3 PPO/A2C MLP): ``macs`` (dense: every weight of the actor path), ``activations``
(one tanh per hidden unit), and the action: a softmax (one exponential per action) and one
random draw when sampled, ``n_actions - 1`` comparisons (argmax) when deterministic.

NeuroBench (Yik et al., "The neurobench framework for benchmarking neuromorphic computing
algorithms and systems", Nature Communications 2025) counts synaptic operations as
accumulates for spiking networks and (effective) MACs for ANNs, and activation sparsity as
the fraction of zero activations. We differ in two places: an accumulate is counted per
kernel basis (a raised-cosine synapse with 3 bases costs 3), and ANN MACs are dense (tanh
units are never exactly zero, so effective MACs equal dense MACs here).
"""
from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("synaptic_accumulates", "neuron_updates", "nonlinearities", "comparisons", "random_draws", "spikes",
         "macs", "activations")


@dataclass(frozen=True)
class OpTable:
    """pJ per operation kind; ``None``: the kind does not run on this hardware."""

    name: str
    source: str
    pj: dict
    how: dict = field(default_factory=dict)


# M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm,
# 0.9 V: 32-bit float add 0.9 pJ, multiply 3.7 pJ; 32-bit int add 0.1 pJ; 64-bit read of an
# 8 KB SRAM 10 pJ.
CMOS_45NM = OpTable(
    name="45 nm CMOS",
    source="M. Horowitz, \"Computing's energy problem (and what we can do about it)\", ISSCC 2014 (45 nm, 0.9 V): "
           "fp32 add 0.9 pJ, fp32 multiply 3.7 pJ, int32 add 0.1 pJ, 64-bit read of an 8 KB SRAM 10 pJ",
    pj={"synaptic_accumulates": 0.9, "neuron_updates": 2 * 3.7 + 2 * 0.9, "nonlinearities": 10.0,
        "comparisons": 0.9, "random_draws": 0.6, "spikes": 0.0, "macs": 3.7 + 0.9, "activations": 10.0},
    how={"synaptic_accumulates": "one fp32 add",
         "neuron_updates": "two fp32 multiplies (current decays) + two fp32 adds (currents + bias)",
         "nonlinearities": "a 256-entry table lookup (8 KB SRAM read)",
         "comparisons": "one fp32 add",
         "random_draws": "a 32-bit xorshift: 3 shifts + 3 xors, each as an int32 add (0.1 pJ)",
         "spikes": "no routing cost (a spike's cost is the accumulates it triggers)",
         "macs": "fp32 multiply + fp32 add",
         "activations": "a 256-entry table lookup (8 KB SRAM read)"},
)

# M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning", IEEE
# Micro 38(1), 2018, Table 2 (14 nm): energy per synaptic spike operation 23.6 pJ, per
# (active) neuron update 52 pJ, within-tile spike energy 1.7 pJ.
LOIHI = OpTable(
    name="Loihi",
    source="M. Davies et al., \"Loihi: A Neuromorphic Manycore Processor with On-Chip Learning\", IEEE Micro 38(1), "
           "2018, Table 2: synaptic spike op 23.6 pJ, neuron update (active) 52 pJ, within-tile spike 1.7 pJ",
    pj={"synaptic_accumulates": 23.6, "neuron_updates": 52.0, "nonlinearities": 0.0, "comparisons": 0.0,
        "random_draws": 0.0, "spikes": 1.7, "macs": None, "activations": None},
    how={"synaptic_accumulates": "synaptic spike op",
         "neuron_updates": "active neuron update (its threshold test and noise are part of it)",
         "nonlinearities": "inside the neuron update (the encoder's fields run on the host: CMOS figure added)",
         "comparisons": "inside the neuron update", "random_draws": "inside the neuron update (per-neuron noise)",
         "spikes": "within-tile spike", "macs": "not a Loihi operation", "activations": "not a Loihi operation"},
)

TABLES = (CMOS_45NM, LOIHI)


def spiking_ops(*, n_neurons: int, n_inputs: int, encoder_exps: int, latency: float, spikes: float, sops: float,
                mode: str, vote_samples: int = 1, encoder_macs: float = 0.0) -> dict:
    """Operations of one decision (means over decisions). ``mode``: sampled, vote, threshold or
    regular (a sigmoid per neuron update, as sampling, whose phase is compared instead of a
    random draw). ``encoder_macs``: the encoder's multiply-accumulates (its random
    projections), the decision's only MACs."""
    if mode not in ("sampled", "vote", "threshold", "regular"):
        raise ValueError(f"mode must be sampled, vote, threshold or regular, got {mode!r}")
    runs = vote_samples if mode == "vote" else 1
    steps = latency * runs
    sampled = mode in ("sampled", "vote")
    updates = steps * (n_neurons - n_inputs)
    return {"synaptic_accumulates": float(sops), "neuron_updates": updates,
            "nonlinearities": (updates if sampled or mode == "regular" else 0.0) + encoder_exps,
            "comparisons": steps * n_neurons,
            "random_draws": (steps * n_neurons + runs) if sampled else 0.0,
            "spikes": float(spikes), "macs": float(encoder_macs), "activations": 0.0}


OPS_OF_OUTPUTS = {"vote": "vote", "threshold": "threshold", True: "threshold", "median": "threshold",
                  "regular": "regular"}
"""The :func:`spiking_ops` mode of each deterministic mode (``deterministic_outputs``): the
median outputs' softplus sums are counted as the threshold network's comparisons."""


def ann_ops(*, macs: float, activations: int, n_actions: int, deterministic: bool) -> dict:
    return {"synaptic_accumulates": 0.0, "neuron_updates": 0.0,
            "nonlinearities": 0.0 if deterministic else float(n_actions),
            "comparisons": float(n_actions - 1) if deterministic else float(n_actions),
            "random_draws": 0.0 if deterministic else 1.0, "spikes": 0.0,
            "macs": float(macs), "activations": float(activations)}


def network_facts(model) -> dict:
    """What the operation counts need of a built agent: the spiking network's size, encoder and
    vote, or an ANN actor's hidden units and actions (SB3 PPO/A2C/DQN, pg-mlp)."""
    from .policy import Policy

    policy = model.policy
    if isinstance(policy, Policy) and policy.spiking:
        enc = policy.encoder
        return {"kind": "spiking", "n_neurons": policy.topo.n_neurons, "n_inputs": policy.topo.n_in,
                "encoder_exps": enc.n_inputs if enc.features == "population" else 0,
                "encoder_macs": encoder_macs(enc),
                "vote_samples": model.config.vote_samples, "det_mode": model.config.deterministic_outputs}
    if isinstance(policy, Policy):  # pg-mlp: spikerl's own perceptron
        return {"kind": "ann", "activations": policy.hidden, "n_actions": policy.n_actions}
    import math

    import torch.nn as nn
    from gymnasium import spaces

    from .baselines import actor_modules

    hidden = [m.out_features for mod in actor_modules(model) for m in mod.modules() if isinstance(m, nn.Linear)][:-1]
    space = model.action_space
    # a Box action (SB3's Gaussian policy): the action's dimensions stand for the actions
    n_actions = int(space.n) if isinstance(space, spaces.Discrete) else math.prod(space.shape)
    return {"kind": "ann", "activations": sum(hidden), "n_actions": n_actions}


def encoder_macs(encoder) -> int:
    """Multiply-accumulates of an encoder per observation: its random projections' (population code)."""
    proj = getattr(encoder.feature_map, "proj", None)
    return 0 if proj is None else int(proj.size)


def energy(ops: dict, table: OpTable, *, host: OpTable = CMOS_45NM, encoder_exps: float = 0.0,
           encoder_macs: float = 0.0) -> dict | None:
    """pJ per kind and ``total`` (``None`` if an operation does not run on this hardware).
    On a neuromorphic table the encoder's exponentials and MACs are priced on ``host``."""
    out = {}
    on_host = table is not host
    for kind in KINDS:
        n = ops.get(kind, 0.0)
        if kind == "macs" and on_host:
            n -= encoder_macs
        cost = table.pj[kind]
        if n and cost is None:
            return None
        out[kind] = n * (cost or 0.0)
    if on_host and encoder_exps:
        out["nonlinearities"] += encoder_exps * host.pj["nonlinearities"]
    if on_host and encoder_macs:
        out["macs"] += encoder_macs * host.pj["macs"]
    out["total"] = sum(out[k] for k in KINDS)
    return out


def decision_energy(facts: dict, figures: dict, *, sampled: bool, outputs=None) -> tuple[dict, dict]:
    """Operations (:func:`spiking_ops` / :func:`ann_ops`) and energy on every table of one
    decision of the network ``facts`` describes (:func:`network_facts`), from the per-decision
    figures measured in one mode (``latency``, ``spikes_per_decision``, ``sops_per_decision``;
    an ANN's ``macs_per_decision``). ``outputs``: how a deterministic spiking mode decides (a key
    of :data:`OPS_OF_OUTPUTS`)."""
    if facts["kind"] == "ann":  # MACs as measured (the acting network's, per forward pass)
        ops = ann_ops(macs=figures.get("macs_per_decision") or 0.0, activations=facts["activations"],
                      n_actions=facts["n_actions"], deterministic=not sampled)
        exps = macs = 0
    else:
        exps, macs = facts["encoder_exps"], facts.get("encoder_macs", 0)
        ops = spiking_ops(n_neurons=facts["n_neurons"], n_inputs=facts["n_inputs"], encoder_exps=exps,
                          latency=figures.get("latency") or 0.0, spikes=figures.get("spikes_per_decision") or 0.0,
                          sops=figures.get("sops_per_decision") or 0.0,
                          mode="sampled" if sampled else OPS_OF_OUTPUTS[outputs], vote_samples=facts["vote_samples"],
                          encoder_macs=macs)
    return ops, {t.name: energy(ops, t, encoder_exps=exps, encoder_macs=macs) for t in TABLES}


def breakdown_markdown(rows: list[tuple[str, dict, dict]]) -> str:
    """``rows``: (label, ops, {table name: energy dict or None}) -> a Markdown table."""
    names = [t.name for t in TABLES]
    head = "| agent, mode | operation | count / decision | " + " | ".join(f"{n} (pJ)" for n in names) + " |"
    lines = [head, "|---|---|---|" + "---|" * len(names)]
    for label, ops, en in rows:
        for kind in KINDS:
            if not ops.get(kind):
                continue
            cells = [("-" if en[n] is None else f"{en[n][kind]:,.1f}") for n in names]
            lines.append(f"| {label} | {kind.replace('_', ' ')} | {ops[kind]:,.1f} | " + " | ".join(cells) + " |")
        cells = [("n/a" if en[n] is None else f"**{en[n]['total'] / 1000:,.3f} nJ**") for n in names]
        lines.append(f"| {label} | **total** | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def sources_markdown() -> str:
    lines = []
    for t in TABLES:
        lines.append(f"- **{t.name}**: {t.source}.")
        lines += [f"  - {k.replace('_', ' ')}: {'-' if t.pj[k] is None else f'{t.pj[k]:g} pJ'} ({t.how[k]})"
                  for k in KINDS]
    return "\n".join(lines) + "\n"


__all__ = ["network_facts", "OPS_OF_OUTPUTS", "OpTable", "CMOS_45NM", "LOIHI", "TABLES", "spiking_ops", "ann_ops", "energy", "breakdown_markdown",
           "sources_markdown"]
