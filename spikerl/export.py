"""Export a trained spiking policy as a dependency-free C99 module (``.h`` + ``.c``).

    spikerl export runs/CartPole-v1__fts-snn__s0__.../ --format c --out policy_c/ [--weights int16]

The module holds the trained agent whole: its encoder (bounds frozen at export), the GLM
network with its weights as ``const`` arrays (exponential kernels run recursively, other
kernels through their bank), first-to-spike (or rate) decoding with the stop at ``t*``, the
sampled mode and the agent's deterministic mode (vote, threshold, median or regular), and numpy's
own default bit generator, PCG64 (128-bit LCG, XSL-RR output; doubles as
``(next64 >> 11) * 2^-53``). The C side draws its random numbers in the order the Python
kernel consumes them (per decision ``N x T`` spike uniforms, neuron-major, then one tie
uniform; a vote draws its ``K`` blocks, then ``K`` ties), so a C state seeded with a numpy
``Generator``'s state makes the same decisions as ``predict`` fed by that generator, bit
for bit in float64 (``tests/test_export.py``).

No ``malloc``: all state lives in one ``spk_state`` struct the caller owns (static or on
the stack). Compile-time switch ``SPK_FLOAT32`` (define it) for float arithmetic; the
default is double. ``weights="int16"``/``"int8"`` stores every parameter tensor as integers
with one stated scale per tensor (``value = q * scale``), dequantised as it is used.

:func:`footprint` reports flash bytes (weights and tables), RAM bytes (``spk_state``) and
operations per decision (worst case and, given decisions, their mean), and the same for an
SB3 PPO actor in float32.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from .coding import CODE_IDS, BoxFeatures, ComponentOneHotFeatures, PopulationFeatures
from .energy import encoder_macs
from .engine import DETERMINISTIC, geometric_decay
from .policy import SpikingPolicy
from .optim import Adam
from .rules import Critic, MixCritic

WEIGHT_FORMATS = {"float": None, "int16": (np.int16, "int16_t", 32767), "int8": (np.int8, "int8_t", 127)}
MODES = {"sampled": 0, "deterministic": 1, "threshold": 2, "median": 3, "regular": 4}
"""C decision modes: ``deterministic`` is the agent's own deterministic mode (vote/threshold/median/regular)."""


class ExportError(ValueError):
    """The model cannot be exported as asked (says what and why)."""


def _lit(x: float) -> str:
    """An exact C99 literal of a double (hexadecimal floating constant; infinities as
    ``INFINITY``)."""
    x = float(x)
    if np.isinf(x):
        return "INFINITY" if x > 0 else "-INFINITY"
    if np.isnan(x):
        raise ExportError("cannot export a NaN")
    return x.hex()


def _array(ctype: str, name: str, values, fmt=_lit, per_line: int = 6) -> str:
    values = list(np.asarray(values).ravel())
    if not values:  # C99 has no empty arrays
        values = [0]
    items = [fmt(v) for v in values]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return f"static const {ctype} {name}[{len(items)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def _ints(ctype, name, values):
    return _array(ctype, name, values, fmt=lambda v: str(int(v)), per_line=16)


def _tensor(name: str, values: np.ndarray, weights: str) -> tuple[str, str, int]:
    """C source of one parameter tensor, its element accessor macro and its flash bytes."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if WEIGHT_FORMATS[weights] is None:
        return (_array("spk_real", name, values), f"#define {name.upper()}(i) ({name}[i])\n",
                8 * max(values.size, 1))
    dtype, ctype, top = WEIGHT_FORMATS[weights]
    peak = float(np.abs(values).max()) if values.size else 0.0
    scale = peak / top if peak > 0 else 1.0
    q = np.clip(np.rint(values / scale), -top, top).astype(dtype)
    src = _ints(ctype, name + "_q", q) + f"static const double {name}_scale = {_lit(scale)}; /* value = q * scale */\n"
    return src, f"#define {name.upper()}(i) ((spk_real)({name}_q[i] * {name}_scale))\n", np.dtype(dtype).itemsize * max(q.size, 1) + 8


def _check_exportable(model) -> SpikingPolicy:
    policy = getattr(model, "policy", None)
    if not isinstance(policy, SpikingPolicy):
        raise ExportError(f"only spiking agents export to C; got {type(model).__name__}"
                          f"{' with an ANN policy' if policy is not None else ''}")
    enc = policy.encoder
    if isinstance(enc.feature_map, ComponentOneHotFeatures):
        raise ExportError(f"observation space {enc.space}: MultiDiscrete/Tuple observations do not export yet "
                          "(Box and Discrete do)")
    return policy


def export_c(model, out, *, name: str = "spk_policy", weights: str = "float", learn: bool = False) -> dict:
    """Write ``NAME.h`` and ``NAME.c`` (and ``footprint.json``/``.md``) into ``out``; returns
    the footprint report (:func:`footprint`). With ``learn``, the module also carries the
    online actor-critic rule (``NAME_learn_act`` / ``NAME_learn_update``), starting from the
    agent's current parameters, critic, optimiser moments and observation statistics."""
    if weights not in WEIGHT_FORMATS:
        raise ExportError(f"weights must be one of {sorted(WEIGHT_FORMATS)}, got {weights!r}")
    if not name.isidentifier():
        raise ExportError(f"name must be a C identifier, got {name!r}")
    policy = _check_exportable(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header, source, flash = _generate(model, policy, name, weights, learn)
    (out / f"{name}.h").write_text(header)
    (out / f"{name}.c").write_text(source)
    report = footprint(model, weights=weights, flash_tables=flash, learn=learn)
    report["files"] = [f"{name}.h", f"{name}.c"]
    (out / "footprint.json").write_text(json.dumps(report, indent=2))
    (out / "footprint.md").write_text(footprint_markdown(report))
    return report


def _layout(policy: SpikingPolicy):
    topo, enc = policy.topo, policy.encoder
    T = enc.T
    a, b = policy.ff_kernel, policy.fb_kernel
    return topo, enc, T, a, b, geometric_decay(a, T), geometric_decay(b, T)


LEARN_HIDDEN_RULES = ("joint", "posterior")
"""Hidden rules a model may have been trained with to export ``--learn``: the device credits
hidden neurons with their own spikes' score (joint); the posterior estimator has the same
expectation (both unbiased estimates of the same gradient), so a model trained with it goes on
learning the same rule, by a noisier estimate that needs no second pass on the chip. Likewise
the device scores its output layer on the spikes it fired at t*: a model trained with its
output layer scored on the action (``output_score="action"`` or ``"marginal"``, the same
expectation) goes on with that noisier estimate of the same gradient."""


def _check_learnable(model, policy, weights):
    cfg = model.config
    if weights != "float":
        raise ExportError("--learn needs float weights (the rule updates them)")
    if cfg.rate_reg != 0:
        raise ExportError("--learn: the firing-rate regulariser (rate_reg) does not export yet")
    device_critic(model)
    if cfg.hidden_rule not in LEARN_HIDDEN_RULES:
        raise ExportError(f"--learn: hidden_rule {cfg.hidden_rule!r} does not export ({' and '.join(LEARN_HIDDEN_RULES)} do)")


def device_critic(model) -> Critic:
    """The linear critic the device's online rule goes on fitting: the model's own, or the
    linear part of a mixed critic (``critic="mix"``: fitted to the returns on its own, so it is
    a value function by itself), with its slice of the optimiser's moments. A perceptron
    critic alone (``mlp``, ``auto`` on Box observations, ``features+mlp``, whose linear part
    fits only what the perceptron leaves) has no linear critic to hand over: ExportError."""
    critic = model.critic
    if isinstance(critic, Critic):
        return critic
    if not isinstance(critic, MixCritic):
        raise ExportError(f"--learn: critic {model.config.critic!r} ({type(critic).__name__}) does not export (the "
                          f"device learns with the linear critic: critic='features' or 'mix')")
    n, m = critic.mlp.c.size, critic.linear.c.size
    linear = copy.copy(critic.linear)  # its features and step size; its own parameters and moments below
    linear.c, linear.opt = critic.linear.c.copy(), Adam(m)
    linear.opt.m, linear.opt.v = critic.opt.m[n : n + m].copy(), critic.opt.v[n : n + m].copy()
    linear.opt.t = critic.opt.t
    return linear


def _learn_parts(model, policy):
    """C tables and defines of the online actor-critic: initial state of every learnt array
    (and the device critic's parameter count).
    A device learns without end, so it uses the constant ``learning_rate`` (a linear schedule
    needs a known budget)."""
    cfg, topo, enc, critic = model.config, policy.topo, policy.encoder, device_critic(model)
    P, R = policy.n_params, critic.b.size
    C = critic.c.size
    parts = [_array("spk_real", "theta0", policy.theta), _ints("uint8_t", "learnable", policy.learnable),
             _ints("int32_t", "pre_syn", topo.pre_syn), _array("spk_real", "adam_m0", model.optimizer.m),
             _array("spk_real", "adam_v0", model.optimizer.v), _array("spk_real", "critic_W", critic.W),
             _array("spk_real", "critic_b", critic.b), _array("spk_real", "critic_c0", critic.c),
             _array("spk_real", "cadam_m0", critic.opt.m), _array("spk_real", "cadam_v0", critic.opt.v)]
    flash = 8 * (P * 3 + critic.W.size + R + 3 * C) + P + 4 * topo.n_synapses
    defs = (f"#define GAMMA {_lit(cfg.gamma)}\n#define LAM {_lit(cfg.lam)}\n#define LR {_lit(cfg.learning_rate)}\n"
            f"#define CRITIC_LR {_lit(critic.lr)}\n#define W_CLIP {_lit(cfg.w_clip)}\n"
            f"#define OUT_BIAS_CAP {int(cfg.out_bias_max is not None)}\n"
            f"#define OUT_BIAS_MAX {_lit(cfg.out_bias_max if cfg.out_bias_max is not None else 0.0)}\n"
            f"#define ADAM_T0 {int(model.optimizer.t)}\n#define CADAM_T0 {int(critic.opt.t)}\n"
            f"#define N_RANDOM {R}\n")
    fm = enc.feature_map
    if isinstance(fm, BoxFeatures):
        st = fm.stats
        parts += [_array("double", "space_low", fm.space_low), _array("double", "space_high", fm.space_high),
                  _array("double", "fixed_low", fm.fixed_low), _array("double", "fixed_high", fm.fixed_high),
                  _ints("uint8_t", "fixed", fm.fixed), _array("double", "stats_mean0", st.mean),
                  _array("double", "stats_m20", st.m2)]
        defs += (f"#define RUNNING {int(not fm.fixed.all())}\n#define N_STD {_lit(fm.n_std)}\n"
                 f"#define STATS_COUNT0 {_lit(st.count)}\n")
        flash += 8 * 6 * fm.obs_dim
    else:
        defs += "#define RUNNING 0\n"
    return parts, defs, flash, C


def _generate(model, policy: SpikingPolicy, name: str, weights: str, learn: bool = False):
    topo, enc, T, a, b, ff_decay, fb_decay = _layout(policy)
    cfg = model.config
    if learn:
        _check_learnable(model, policy, weights)
    N, n_in, n_hid, n_out, S = topo.n_neurons, topo.n_in, topo.n_hid, topo.n_out, topo.n_synapses
    K, Kb = a.shape[0], b.shape[0]
    pre_syn = np.asarray(topo.pre_syn, np.int64)
    qpost = np.asarray(topo.post, np.int64)[pre_syn]
    params = policy.params
    det_mode = cfg.deterministic_outputs
    if det_mode not in ("vote", *[k for k in DETERMINISTIC if isinstance(k, str)]):
        raise ExportError(f"deterministic_outputs {det_mode!r} does not export")
    av = np.asarray(model.action_values)
    act_dim = int(np.prod(av.shape[1:])) if av.ndim > 1 else 1
    U = name.upper()
    flash = 0
    parts = []
    # ---- encoder ------------------------------------------------------------------
    fm = enc.feature_map
    population = isinstance(fm, PopulationFeatures)
    if isinstance(fm, BoxFeatures):
        low, high = fm.bounds()
        n_obs = fm.obs_dim
        if not (learn and not fm.fixed.all()):  # learning with running bounds computes them
            parts += [_array("double", "enc_low", low), _array("double", "enc_high", high)]
            flash += 16 * n_obs
        n_proj = fm.n_projections if population else 0
        if population:
            parts.append(_array("double", "enc_centres", fm.centres))
            flash += 8 * fm.n_fields
        if n_proj:  # the random directions, row by row
            parts.append(_array("double", "enc_proj", fm.proj.ravel()))
            flash += 8 * fm.proj.size
        enc_defs = (f"#define ENC_BOX 1\n#define ENC_POPULATION {int(population)}\n#define ENC_N_PROJ {n_proj}\n"
                    f"#define ENC_FIELDS {fm.n_fields if population else 1}\n"
                    f"#define ENC_INV_WIDTH {_lit(fm.inv_width if population else 0.0)}\n")
    else:  # one-hot or tile of a Discrete state
        n_obs = 1
        parts.append(_ints("int32_t", "enc_tile_of", fm.index_of))
        flash += 4 * fm.index_of.size
        enc_defs = (f"#define ENC_BOX 0\n#define ENC_POPULATION 0\n#define ENC_N_PROJ 0\n#define ENC_FIELDS 1\n"
                    f"#define ENC_INV_WIDTH 0.0\n"
                    f"#define ENC_N_STATES {fm.n_states}\n#define ENC_START {fm.start}\n")
    enc_defs += "".join(f"#define ENC_CODE_{c.upper()} {i}\n" for c, i in CODE_IDS.items())
    enc_defs += (f"#define ENC_CODE {CODE_IDS[enc.code]} /* {enc.code} */\n#define ENC_P_MAX {_lit(enc.p_max)}\n"
                 f"#define ENC_F_MIN {_lit(enc.f_min)}\n")
    # ---- network ------------------------------------------------------------------
    parts.append(_ints("int32_t", "pre_ptr", topo.pre_ptr))
    parts.append(_ints("int32_t", "qpost", qpost))
    flash += 4 * (topo.pre_ptr.size + qpost.size)
    macros = []
    if not learn:  # learning keeps the parameters in the state (theta), not in tables
        if ff_decay >= 0.0:  # recursive: one weight times a(0) per synapse, in pre-synaptic order
            src, mac, nb = _tensor("net_wq", params.w[pre_syn, 0] * a[0, 0], weights)
        else:
            src, mac, nb = _tensor("net_w", params.w[pre_syn].ravel(), weights)
        parts.append(src)
        macros.append(mac)
        flash += nb
        for tname, values in (("net_v", params.v), ("net_bias", params.bias)):
            src, mac, nb = _tensor(tname, values, weights)
            parts.append(src)
            macros.append(mac)
            flash += nb
    if ff_decay < 0.0:
        parts.append(_array("spk_real", "net_a", a))
        flash += 8 * a.size
    if fb_decay < 0.0:
        parts.append(_array("spk_real", "net_b", b))
        flash += 8 * b.size
    parts.append(_array("double", "action_values", av.astype(np.float64)))
    flash += 8 * av.size
    net_defs = (f"#define FF_GEOMETRIC {int(ff_decay >= 0.0)}\n#define FF_DECAY {_lit(max(ff_decay, 0.0))}\n"
                f"#define FB_GEOMETRIC {int(fb_decay >= 0.0)}\n#define FB_DECAY {_lit(max(fb_decay, 0.0))}\n"
                f"#define B00 {_lit(b[0, 0])}\n#define A00 {_lit(a[0, 0])}\n#define PUSHED {int(ff_decay < 0.0 or fb_decay < 0.0)}\n"
                f"#define KA {K}\n#define MA {a.shape[1]}\n#define KB {Kb}\n#define MB {b.shape[1]}\n"
                f"#define RATE_DECODER {int(policy.decoder == 'rate')}\n")
    learn_defs = "#define SPK_LEARN 0\n"
    n_critic = 1
    if learn:
        lparts, ldefs, lflash, n_critic = _learn_parts(model, policy)
        parts += lparts
        enc_defs += ldefs
        flash += lflash
        learn_defs = f"#define SPK_LEARN 1\n#define SPK_CAUSAL {int(policy.causal)}\n"
    header = HEADER.replace("spk_", f"{name}_").replace("SPK_", f"{U}_").format(U=U, name=name, n_obs=n_obs, n_in=n_in, n_hid=n_hid, n_out=n_out, N=N, T=T, S=S,
                           act_dim=act_dim, learn_defs=learn_defs.replace("SPK_", f"{U}_"), KA=K, KB=Kb,
                           P=policy.n_params, C=n_critic, vote=int(cfg.vote_samples), det=det_mode,
                           det_code={"vote": 0, "threshold": 1, True: 1, "median": 2, "regular": 3}[det_mode],
                           weights=weights, env=getattr(model, "env_id", None) or "?")
    source = SOURCE.replace("@TABLES@", "".join(parts)).replace(
        "@DEFS@", enc_defs + net_defs + "".join(macros))
    source = source.replace("spk_", f"{name}_").replace("SPK_", f"{U}_").replace("@NAME@", name)
    return header, source, flash


def operations_per_decision(policy: SpikingPolicy, *, latency=None, spikes=None, sops=None) -> dict:
    """Operations of one decision by kind. Worst case: every neuron spikes at every step of
    ``T``; with measured ``latency``/``spikes``/``sops`` (arrays over decisions), their mean."""
    topo, enc, T, a, b, ff_decay, fb_decay = _layout(policy)
    n_sampled = topo.n_neurons - topo.n_in
    if latency is None:
        steps = T
        spk = topo.n_neurons * (T - 1)
        sop = topo.n_synapses * a.shape[0] * (T - 1)
    else:
        steps = float(np.mean(latency))
        spk = float(np.mean(np.asarray(spikes).sum(-1)))
        sop = float(np.mean(sops))
    enc_exps = enc.n_inputs if enc.features == "population" else 0
    return {
        "encoder_macs": encoder_macs(enc),
        "synaptic_accumulates": sop,
        "neuron_updates": steps * n_sampled,  # u = currents + bias, one sigmoid or comparison each
        "nonlinearities": steps * n_sampled,
        "random_draws": topo.n_neurons * T + 1,  # drawn per decision (the stream's layout)
        "encoder_exps": enc_exps,
        "spikes": spk,
        "steps": steps,
    }


def state_bytes(model, *, learn: bool = False, real: int = 8) -> int:
    """``sizeof(spk_state)`` of the module (``real`` = 8 for double, 4 with SPK_FLOAT32): its
    fields in order, each aligned to its element size, as a C compiler lays them out."""
    policy = _check_exportable(model)
    topo, enc, T, a, b, _, _ = _layout(policy)
    N, n_in, n_out = topo.n_neurons, topo.n_in, topo.n_out
    n_obs = enc.obs_dim if enc.features in ("normalized", "population") else 1
    fields = [(8, 4), (8, N * T), (real, N), (real, N), (real, N * T), (real, n_in), (real, n_out), (real, n_out),
              (real, N), (4, n_in), (4, n_out), (1, N)]
    if learn:
        P, C = policy.n_params, device_critic(model).c.size
        fields += [(real, P)] * 5 + [(real, C)] * 6 + [(real, n_in), (8, 1), (8, n_obs), (8, n_obs), (8, 2),
                                                       (1, T * N), (real, T * N), (real, N * T),
                                                       (real, T * N * a.shape[0]), (real, T * N * b.shape[0])]
    size = 0
    for align, count in fields:
        size = -(-size // align) * align + align * count
    return -(-size // 8) * 8


def footprint(model, *, weights: str = "float", flash_tables: int | None = None, decisions=None,
              ppo=None, learn: bool = False) -> dict:
    """Flash (weights + tables), RAM (state struct) and operations per decision; with
    ``ppo`` (an SB3 PPO model) the same for its actor in float32."""
    policy = _check_exportable(model)
    enc = policy.encoder
    ram = state_bytes(model, learn=learn)
    rep = {
        "weights": weights,
        "learn": learn,
        "n_parameters": int(policy.learnable.sum()),
        "flash_bytes": int(flash_tables) if flash_tables is not None else None,
        "ram_bytes": int(ram),
        "worst_case": operations_per_decision(policy),
    }
    if decisions is not None:
        rep["mean"] = operations_per_decision(policy, **decisions)
    if ppo is not None:
        from .baselines import macs_per_forward

        actor = [p for n, p in ppo.policy.named_parameters() if not n.startswith(("value_net", "mlp_extractor.value"))]
        n_actor = int(sum(p.numel() for p in actor))
        macs = int(macs_per_forward(ppo))
        hidden = [m.out_features for n, m in ppo.policy.mlp_extractor.policy_net.named_modules()
                  if hasattr(m, "out_features")]
        rep["ppo_actor_float32"] = {"n_parameters": n_actor, "flash_bytes": 4 * n_actor,
                                    "ram_bytes_estimate": 4 * (sum(hidden) + ppo.action_space.n + enc.obs_dim),
                                    "macs": macs, "activations": int(sum(hidden)), "random_draws": 1}
    return rep


def footprint_markdown(rep: dict) -> str:
    w, m = rep["worst_case"], rep.get("mean")
    rows = [("flash (weights + tables), bytes", rep["flash_bytes"], None, "ppo:flash_bytes"),
            ("RAM (state), bytes", rep["ram_bytes"], None, "ppo:ram_bytes_estimate")]
    lines = [f"| {rep['weights']} weights | spiking (worst case) | spiking (mean) | PPO actor float32 |", "|---|---|---|---|"]
    ppo = rep.get("ppo_actor_float32", {})
    for label, val, _, key in rows:
        lines.append(f"| {label} | {val} | | {ppo.get(key.split(':')[1], '')} |")
    names = {"synaptic_accumulates": ("synaptic accumulates / decision", "macs"),
             "neuron_updates": ("neuron updates / decision", "activations"),
             "nonlinearities": ("sigmoids or comparisons / decision", "activations"),
             "random_draws": ("random draws / decision", "random_draws"),
             "encoder_exps": ("encoder exponentials / decision", None),
             "encoder_macs": ("encoder MACs / decision", None),
             "steps": ("steps / decision", None)}
    for k, (label, pk) in names.items():
        mv = "" if m is None else f"{m[k]:.1f}"
        lines.append(f"| {label} | {w[k]:g} | {mv} | {ppo.get(pk, '') if pk else ''} |")
    return "\n".join(lines) + "\n"


HEADER = """\
/* {name}.h: a spiking policy exported by spikerl (env {env}); C99, no dependency beyond
 * the C standard library, no malloc. Weights: {weights}. Compile with -DSPK_FLOAT32 for
 * float arithmetic (default double).
 *
 *   {name}_state st;                           // all state (static or on the stack)
 *   {name}_init(&st, hi, lo, inc_hi, inc_lo);   // PCG64 state (numpy's default generator)
 *   int a = {name}_decide(&st, obs, SPK_SAMPLED, &res);  // index into the action values
 *
 * With SPK_LEARN (spikerl export --learn), the online actor-critic keeps learning:
 *   a = {name}_learn_act(&st, obs, &res);       // a sampled decision, eligibilities kept
 *   ... apply action values[a] to the plant, observe reward and the next observation ...
 *   {name}_learn_update(&st, reward, next_obs, terminated, truncated);
 */
#ifndef SPK_{U}_H
#define SPK_{U}_H
#include <stdint.h>
#include <stddef.h>

#ifdef SPK_FLOAT32
typedef float spk_real;
#else
typedef double spk_real;
#endif

{learn_defs}#define SPK_N_OBS {n_obs}      /* observation values (a Discrete state: 1) */
#define SPK_N_IN {n_in}        /* input neurons */
#define SPK_N_HID {n_hid}
#define SPK_N_OUT {n_out}      /* output neurons = actions */
#define SPK_N {N}
#define SPK_T {T}              /* steps per decision (at most) */
#define SPK_S {S}              /* synapses */
#define SPK_KA {KA}            /* feedforward kernel bases */
#define SPK_KB {KB}            /* feedback kernel bases */
#define SPK_P {P}              /* parameters: S*KA weights, N*KB feedback weights, N biases */
#define SPK_C {C}              /* critic weights (learning) */
#define SPK_ACT_DIM {act_dim}  /* values per env action */
#define SPK_VOTE {vote}        /* samples of a vote */
#define SPK_DET_MODE {det_code} /* the agent's deterministic mode: 0 vote, 1 threshold, 2 median, 3 regular ({det}) */

enum {{ SPK_SAMPLED = 0, SPK_DETERMINISTIC = 1, SPK_THRESHOLD = 2, SPK_MEDIAN = 3, SPK_REGULAR = 4 }};

typedef struct {{ uint64_t hi, lo; }} spk_u128;
typedef struct {{ spk_u128 state, inc; }} spk_pcg64;

typedef struct {{
    spk_pcg64 rng;
    double uniforms[SPK_N * SPK_T];
    spk_real cur_ff[SPK_N], cur_fb[SPK_N], drive[SPK_N * SPK_T], p_in[SPK_N_IN];
    spk_real hazard[SPK_N_OUT], peak[SPK_N_OUT], phase[SPK_N];
    int32_t spike_step[SPK_N_IN], counts[SPK_N_OUT];
    uint8_t spike[SPK_N];
#if SPK_LEARN
    spk_real theta[SPK_P], adam_m[SPK_P], adam_v[SPK_P], elig[SPK_P], trace[SPK_P];
    spk_real c[SPK_C], cadam_m[SPK_C], cadam_v[SPK_C], ctrace[SPK_C], fa[SPK_C], fa_next[SPK_C];
    spk_real feat[SPK_N_IN];
    double stats_count, stats_mean[SPK_N_OBS], stats_m2[SPK_N_OBS];
    long adam_t, cadam_t;
    uint8_t raster[SPK_T * SPK_N];
    spk_real prob[SPK_T * SPK_N], err[SPK_N * SPK_T];
    spk_real filt_a[SPK_T * SPK_N * SPK_KA], filt_b[SPK_T * SPK_N * SPK_KB];
#endif
}} spk_state;

typedef struct {{
    int32_t action;     /* index of the chosen output (see spk_action_value) */
    int32_t latency;    /* steps until the decision (t* + 1; a vote: its slowest sample) */
    int32_t no_spike;   /* 1 when no output spiked (a uniform draw, or the highest potential, chose) */
    int32_t spikes[3];  /* input, hidden, output spikes of the decision */
    int32_t sops;       /* synaptic operations */
}} spk_result;

void spk_init(spk_state *st, uint64_t state_hi, uint64_t state_lo, uint64_t inc_hi, uint64_t inc_lo);
void spk_pcg64_set(spk_pcg64 *r, uint64_t state_hi, uint64_t state_lo, uint64_t inc_hi, uint64_t inc_lo);
uint64_t spk_pcg64_next(spk_pcg64 *r);
double spk_uniform(spk_pcg64 *r);            /* (next >> 11) * 2^-53, as numpy's Generator.random */
void spk_pcg64_advance(spk_pcg64 *r, uint64_t delta);
/* Decide for one observation (SPK_N_OBS doubles; a Discrete state as its integer value).
 * Returns the action index, or -1 for an observation that is not finite / out of the space. */
int spk_decide(spk_state *st, const double *obs, int mode, spk_result *res);
const double *spk_action_value(int action);  /* SPK_ACT_DIM values of the env action */
size_t spk_state_size(void);
#if SPK_LEARN
/* The online actor-critic (the rule of spikerl's reward_factor="td"): update the observation
 * statistics, decide (sampled) and keep the decision's eligibilities (a hidden neuron's: its
 * own spikes' score, the joint estimator). -1 on a bad observation. */
int spk_learn_act(spk_state *st, const double *obs, spk_result *res);
/* After the env step: TD error delta = r + gamma V(s') - V(s) (V(s') = 0 when terminated),
 * traces z = gamma lambda z + e, one Adam step each for the critic and the policy; traces
 * cleared at an episode end (terminated or truncated). -1 on a bad next observation. */
int spk_learn_update(spk_state *st, double reward, const double *next_obs, int terminated, int truncated);
const spk_real *spk_parameters(const spk_state *st);  /* SPK_P values, in spikerl's theta order */
const spk_real *spk_critic_weights(const spk_state *st);  /* SPK_C values */
#endif

#endif
"""

SOURCE = r"""/* @NAME@.c: generated by spikerl export; see @NAME@.h. */
#include "@NAME@.h"
#include <math.h>

@DEFS@
#define OUT0 (SPK_N_IN + SPK_N_HID)
#define LN2 0x1.62e42fefa39efp-1

#if SPK_LEARN
#define W_AT(q, k) (st->theta[pre_syn[q] * KA + (k)])
#define WQ_AT(q) (st->theta[pre_syn[q] * KA] * (spk_real)A00)
#define V_AT(j, k) (st->theta[SPK_S * KA + (j) * KB + (k)])
#define BIAS_AT(i) (st->theta[SPK_S * KA + SPK_N * KB + (i)])
#else
#define W_AT(q, k) NET_W((q) * KA + (k))
#define WQ_AT(q) NET_WQ(q)
#define V_AT(j, k) NET_V((j) * KB + (k))
#define BIAS_AT(i) NET_BIAS(i)
#endif

@TABLES@
/* ---- PCG64: state = state * M + inc (mod 2^128); output XSL-RR of the new state ---- */
#define MUL_HI UINT64_C(0x2360ED051FC65DA4)
#define MUL_LO UINT64_C(0x4385DF649FCCF645)

static spk_u128 u128_mul(spk_u128 a, spk_u128 b)
{
    spk_u128 r;
    uint64_t a0 = a.lo & 0xffffffffu, a1 = a.lo >> 32, b0 = b.lo & 0xffffffffu, b1 = b.lo >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (p01 & 0xffffffffu) + (p10 & 0xffffffffu);
    r.lo = (p00 & 0xffffffffu) | (mid << 32);
    r.hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32) + a.hi * b.lo + a.lo * b.hi;
    return r;
}

static spk_u128 u128_add(spk_u128 a, spk_u128 b)
{
    spk_u128 r;
    r.lo = a.lo + b.lo;
    r.hi = a.hi + b.hi + (r.lo < a.lo);
    return r;
}

void spk_pcg64_set(spk_pcg64 *r, uint64_t state_hi, uint64_t state_lo, uint64_t inc_hi, uint64_t inc_lo)
{
    r->state.hi = state_hi;
    r->state.lo = state_lo;
    r->inc.hi = inc_hi;
    r->inc.lo = inc_lo;
}

uint64_t spk_pcg64_next(spk_pcg64 *r)
{
    spk_u128 m;
    uint64_t x;
    unsigned rot;
    m.hi = MUL_HI;
    m.lo = MUL_LO;
    r->state = u128_add(u128_mul(r->state, m), r->inc);
    x = r->state.hi ^ r->state.lo;
    rot = (unsigned)(r->state.hi >> 58);
    return (x >> rot) | (x << ((64u - rot) & 63u));
}

double spk_uniform(spk_pcg64 *r)
{
    return (double)(spk_pcg64_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

void spk_pcg64_advance(spk_pcg64 *r, uint64_t delta)
{
    spk_u128 cur_mult, cur_plus = r->inc, acc_mult, acc_plus, one;
    cur_mult.hi = MUL_HI;
    cur_mult.lo = MUL_LO;
    acc_mult.hi = 0; acc_mult.lo = 1;
    acc_plus.hi = 0; acc_plus.lo = 0;
    one.hi = 0; one.lo = 1;
    while (delta > 0) {
        if (delta & 1u) {
            acc_mult = u128_mul(acc_mult, cur_mult);
            acc_plus = u128_add(u128_mul(acc_plus, cur_mult), cur_plus);
        }
        cur_plus = u128_mul(u128_add(cur_mult, one), cur_plus);
        cur_mult = u128_mul(cur_mult, cur_mult);
        delta >>= 1;
    }
    r->state = u128_add(u128_mul(acc_mult, r->state), acc_plus);
}

void spk_init(spk_state *st, uint64_t state_hi, uint64_t state_lo, uint64_t inc_hi, uint64_t inc_lo)
{
    spk_pcg64_set(&st->rng, state_hi, state_lo, inc_hi, inc_lo);
#if SPK_LEARN
    {
        int p, d;
        for (p = 0; p < SPK_P; p++) {
            st->theta[p] = theta0[p];
            st->adam_m[p] = adam_m0[p];
            st->adam_v[p] = adam_v0[p];
            st->trace[p] = 0;
        }
        for (p = 0; p < SPK_C; p++) {
            st->c[p] = critic_c0[p];
            st->cadam_m[p] = cadam_m0[p];
            st->cadam_v[p] = cadam_v0[p];
            st->ctrace[p] = 0;
        }
        st->adam_t = ADAM_T0;
        st->cadam_t = CADAM_T0;
#if RUNNING
        st->stats_count = STATS_COUNT0;
        for (d = 0; d < SPK_N_OBS; d++) {
            st->stats_mean[d] = stats_mean0[d];
            st->stats_m2[d] = stats_m20[d];
        }
#else
        (void)d;
#endif
    }
#endif
}

size_t spk_state_size(void) { return sizeof(spk_state); }

const double *spk_action_value(int action) { return &action_values[action * SPK_ACT_DIM]; }

/* ---- encoder: observation -> features in [0, 1] -> input spike probability (rate) or step (time) ---- */
#if ENC_BOX
static void bounds(const spk_state *st, int d, double *lo, double *hi)
{
#if SPK_LEARN && RUNNING
    if (!fixed[d]) {
        double sd = sqrt(st->stats_m2[d] / (st->stats_count > 1.0 ? st->stats_count : 1.0)) + 1e-8;
        double spread = N_STD * sd, l, h;
        spread = spread > 1e-3 ? spread : 1e-3;
        l = st->stats_mean[d] - spread;
        l = l > space_low[d] ? l : space_low[d];
        l = l < space_high[d] - 1e-3 ? l : space_high[d] - 1e-3;
        h = st->stats_mean[d] + spread;
        h = h > l + 1e-3 ? h : l + 1e-3;
        h = h < space_high[d] ? h : space_high[d];
        *lo = l;
        *hi = h;
        return;
    }
    *lo = fixed_low[d];
    *hi = fixed_high[d];
#else
    (void)st;
    *lo = enc_low[d];
    *hi = enc_high[d];
#endif
}
#endif

static int features(const spk_state *st, const double *obs, spk_real *f)
{
#if ENC_BOX
    int d, m;
#if ENC_N_PROJ
    int k;
    double zc[SPK_N_OBS];
#endif
    for (d = 0; d < SPK_N_OBS; d++)
        if (!isfinite(obs[d]))
            return -1;
    for (d = 0; d < SPK_N_OBS; d++) {
        double x = obs[d], z, lo, hi;
        bounds(st, d, &lo, &hi);
        x = x > lo ? x : lo;
        x = x < hi ? x : hi;
        z = (x - lo) / (hi - lo);
        for (m = 0; m < ENC_FIELDS; m++) {
#if ENC_POPULATION
            double e = (z - enc_centres[m]) * ENC_INV_WIDTH;
            f[d * ENC_FIELDS + m] = (spk_real)exp(-0.5 * e * e);
#else
            f[d * ENC_FIELDS + m] = (spk_real)z;
#endif
        }
#if ENC_N_PROJ
        zc[d] = 2.0 * z - 1.0;
#endif
    }
#if ENC_N_PROJ
    for (k = 0; k < ENC_N_PROJ; k++) { /* each random direction's fields, after the dimensions' */
        double y = 0.0, z;
        for (d = 0; d < SPK_N_OBS; d++)
            y += zc[d] * enc_proj[k * SPK_N_OBS + d];
        y = y > -1.0 ? y : -1.0;
        y = y < 1.0 ? y : 1.0;
        z = (y + 1.0) * 0.5;
        for (m = 0; m < ENC_FIELDS; m++) {
            double e = (z - enc_centres[m]) * ENC_INV_WIDTH;
            f[(SPK_N_OBS + k) * ENC_FIELDS + m] = (spk_real)exp(-0.5 * e * e);
        }
    }
#endif
#else
    double x = obs[0];
    long s;
    int j;
    (void)st;
    if (!isfinite(x) || x != floor(x) || x < ENC_START || x >= ENC_START + ENC_N_STATES)
        return -1;
    s = (long)x - ENC_START;
    for (j = 0; j < SPK_N_IN; j++)
        f[j] = (spk_real)(j == enc_tile_of[s] ? 1.0 : 0.0);
#endif
    return 0;
}

static void temporal(spk_state *st, const spk_real *f)
{
    int j;
    for (j = 0; j < SPK_N_IN; j++) {
#if ENC_CODE == ENC_CODE_TIME
        st->spike_step[j] = f[j] >= ENC_F_MIN ? (int32_t)rint((1.0 - f[j]) * (SPK_T - 1)) : -1;
#else /* rate and regular codes keep the rate */
        st->p_in[j] = (spk_real)(ENC_P_MAX * f[j]);
#endif
    }
}

static double input_p(const spk_state *st, int j, int t)
{
#if ENC_CODE == ENC_CODE_TIME
    return t == st->spike_step[j] ? 1.0 : 0.0;
#elif ENC_CODE == ENC_CODE_REGULAR /* a spike iff floor(1/2 + (t+1) r) > floor(1/2 + t r) */
    return floor(0.5 + (t + 1.0) * (double)st->p_in[j]) - floor(0.5 + t * (double)st->p_in[j]);
#else
    (void)t;
    return (double)st->p_in[j];
#endif
}

static spk_real sigmoid(spk_real x)
{
    if (x >= 0)
        return (spk_real)(1.0 / (1.0 + exp(-(double)x)));
    {
        double z = exp((double)x);
        return (spk_real)(z / (1.0 + z));
    }
}

static double softplus(double x)
{
    if (x > 0.0)
        return x + log1p(exp(-x));
    return log1p(exp(x));
}

#if PUSHED
/* drive[i, t+1+d] += sum_k weight_k bank[k, d] (kind 0: synapse q, feedforward; 1: neuron q, feedback) */
static void push(spk_state *st, int i, int t, int kind, int q)
{
    int k, d, horizon = SPK_T - 1 - t;
    int K = kind ? KB : KA, M = kind ? MB : MA;
    for (k = 0; k < K; k++) {
        spk_real w;
        const spk_real *bank;
#if FF_GEOMETRIC
        w = V_AT(q, k);
        bank = net_b;
#elif FB_GEOMETRIC
        w = W_AT(q, k);
        bank = net_a;
#else
        w = kind ? V_AT(q, k) : W_AT(q, k);
        bank = kind ? net_b : net_a;
#endif
        for (d = 0; d < (M < horizon ? M : horizon); d++)
            st->drive[i * SPK_T + t + 1 + d] += w * bank[k * M + d];
    }
}
#endif

/* One network run (DESIGN.md section 2); det: 0 sampled, 1 threshold, 2 median outputs,
 * 3 regular (every neuron's phase adds its probability and fires on passing 1).
 * With learn, the raster and spike probabilities are kept for the eligibilities. */
static void run(spk_state *st, int det, double tie, int learn, spk_result *res)
{
    int t, i, j, o, q, last = SPK_T - 1, n_first = 0, best = -1;
    int32_t c_in = 0, c_hid = 0, c_out = 0, sops = 0;
    spk_real best_u = -INFINITY;
    (void)learn;
    for (i = 0; i < SPK_N; i++) {
        st->cur_ff[i] = 0;
        st->cur_fb[i] = 0;
    }
#if PUSHED
    for (i = 0; i < SPK_N * SPK_T; i++)
        st->drive[i] = 0;
#endif
    for (j = 0; j < SPK_N; j++)
        st->phase[j] = (spk_real)0.5;
    for (o = 0; o < SPK_N_OUT; o++) {
        st->hazard[o] = 0;
        st->peak[o] = -INFINITY;
        st->counts[o] = 0;
    }
    for (t = 0; t < SPK_T; t++) {
        int any_out = 0;
        for (j = 0; j < SPK_N_IN; j++) {
            double p = input_p(st, j, t);
            int s;
            if (det) {
                st->phase[j] += (spk_real)p;
                s = st->phase[j] >= 1;
                if (s)
                    st->phase[j] -= 1;
            } else {
                s = st->uniforms[j * SPK_T + t] < p;
            }
            st->spike[j] = (uint8_t)s;
            c_in += s;
        }
        for (i = SPK_N_IN; i < SPK_N; i++) {
            spk_real u = st->cur_ff[i] + st->cur_fb[i] + BIAS_AT(i), pi;
            int s;
#if PUSHED
            u += st->drive[i * SPK_T + t];
#endif
            pi = sigmoid(u);
            if (det == 3) {
                st->phase[i] += pi;
                s = st->phase[i] >= 1;
                if (s)
                    st->phase[i] -= 1;
            } else if (det == 2 && i >= OUT0) {
                st->hazard[i - OUT0] += (spk_real)softplus((double)u);
                s = st->hazard[i - OUT0] >= LN2;
                if (s)
                    st->hazard[i - OUT0] = 0;
            } else if (det) {
                s = u > 0;
            } else {
                s = st->uniforms[i * SPK_T + t] < (double)pi;
            }
            st->spike[i] = (uint8_t)s;
#if SPK_LEARN
            st->prob[t * SPK_N + i] = pi;
#endif
            if (i < OUT0) {
                c_hid += s;
            } else {
                c_out += s;
                st->counts[i - OUT0] += s;
                if (u > st->peak[i - OUT0])
                    st->peak[i - OUT0] = u;
                if (s)
                    any_out = 1;
            }
        }
#if SPK_LEARN
        for (i = 0; i < SPK_N; i++)
            st->raster[t * SPK_N + i] = st->spike[i];
#endif
        if ((!RATE_DECODER && any_out) || t == SPK_T - 1) {
            last = t;
            break;
        }
#if FF_GEOMETRIC
        for (i = SPK_N_IN; i < SPK_N; i++)
            st->cur_ff[i] *= (spk_real)FF_DECAY;
#endif
#if FB_GEOMETRIC
        for (i = SPK_N_IN; i < SPK_N; i++)
            st->cur_fb[i] *= (spk_real)FB_DECAY;
#endif
        for (j = 0; j < SPK_N; j++) {
            if (!st->spike[j])
                continue;
            sops += (pre_ptr[j + 1] - pre_ptr[j]) * KA;
            for (q = pre_ptr[j]; q < pre_ptr[j + 1]; q++) {
#if FF_GEOMETRIC
                st->cur_ff[qpost[q]] += WQ_AT(q);
#else
                push(st, qpost[q], t, 0, q);
#endif
            }
            if (j >= SPK_N_IN) {
#if FB_GEOMETRIC
                st->cur_fb[j] += V_AT(j, 0) * (spk_real)B00;
#else
                push(st, j, t, 1, j);
#endif
            }
        }
    }
    /* decode */
    {
        int32_t top = 0;
        for (o = 0; o < SPK_N_OUT; o++) {
#if RATE_DECODER
            if (st->counts[o] > top) {
                top = st->counts[o];
                n_first = 1;
            } else if (st->counts[o] == top && top > 0) {
                n_first++;
            }
#else
            n_first += st->spike[OUT0 + o];
#endif
        }
        if (n_first > 0) {
            int pick = (int)(tie * n_first), seen = 0;
            if (pick > n_first - 1)
                pick = n_first - 1;
            for (o = 0; o < SPK_N_OUT; o++) {
#if RATE_DECODER
                int hit = st->counts[o] == top;
#else
                int hit = st->spike[OUT0 + o];
#endif
                if (!hit)
                    continue;
                if (det) {
                    if (st->peak[o] > best_u) {
                        best_u = st->peak[o];
                        best = o;
                    }
                } else if (seen == pick) {
                    best = o;
                }
                seen++;
            }
            res->no_spike = 0;
        } else {
            res->no_spike = 1;
            if (det) {
                for (o = 0; o < SPK_N_OUT; o++)
                    if (st->peak[o] > best_u) {
                        best_u = st->peak[o];
                        best = o;
                    }
            } else {
                best = (int)(tie * SPK_N_OUT);
                if (best > SPK_N_OUT - 1)
                    best = SPK_N_OUT - 1;
            }
        }
        (void)top;
    }
    res->action = best;
    res->latency = last + 1;
    res->spikes[0] = c_in;
    res->spikes[1] = c_hid;
    res->spikes[2] = c_out;
    res->sops = sops;
#if SPK_LEARN
    if (learn) { /* eligibilities, in theta order (DESIGN.md section 5) */
        int k, tp, m, ns, times[SPK_T];
        for (i = 0; i < SPK_P; i++)
            st->elig[i] = 0;
        for (i = SPK_N_IN; i < SPK_N; i++) {
            spk_real acc = 0;
            for (t = 0; t <= last; t++) {
                spk_real e = (spk_real)st->raster[t * SPK_N + i] - st->prob[t * SPK_N + i];
                if (SPK_CAUSAL && t == last && i < SPK_N_IN + SPK_N_HID)
                    e = 0; /* causal_hidden: no output sees a hidden spike at t* */
                st->err[i * SPK_T + t] = e;
                acc += e;
            }
            st->elig[SPK_S * KA + SPK_N * KB + i] = acc;
        }
        /* F[t', i, k] = sum_d bank[k, d] err[i, t'+1+d], for t' < t* (recursive for one geometric basis) */
        for (i = SPK_N_IN; i < SPK_N; i++) {
            int kind;
            for (kind = 0; kind < 2; kind++) {
                spk_real *filt = kind ? st->filt_b : st->filt_a;
                int K = kind ? KB : KA, geometric = kind ? FB_GEOMETRIC : FF_GEOMETRIC;
                spk_real decay = (spk_real)(kind ? FB_DECAY : FF_DECAY), first = (spk_real)(kind ? B00 : A00);
                if (geometric) {
                    spk_real acc = 0;
                    for (tp = last - 1; tp >= 0; tp--) {
                        acc = first * st->err[i * SPK_T + tp + 1] + decay * acc;
                        filt[(tp * SPK_N + i) * K] = acc;
                    }
                } else {
#if PUSHED
                    const spk_real *bank = kind ? net_b : net_a;
                    int M = kind ? MB : MA, d;
                    for (tp = 0; tp < last; tp++)
                        for (k = 0; k < K; k++) {
                            spk_real acc = 0;
                            for (d = 0; d < (M < last - tp ? M : last - tp); d++)
                                acc += bank[k * M + d] * st->err[i * SPK_T + tp + 1 + d];
                            filt[(tp * SPK_N + i) * K + k] = acc;
                        }
#endif
                }
            }
        }
        for (j = 0; j < SPK_N; j++) {
            ns = 0;
            for (tp = 0; tp < last; tp++)
                if (st->raster[tp * SPK_N + j])
                    times[ns++] = tp;
            if (ns == 0)
                continue;
            for (q = pre_ptr[j]; q < pre_ptr[j + 1]; q++) {
                i = qpost[q];
                for (k = 0; k < KA; k++) {
                    spk_real acc = 0;
                    for (m = 0; m < ns; m++)
                        acc += st->filt_a[(times[m] * SPK_N + i) * KA + k];
                    st->elig[pre_syn[q] * KA + k] = acc;
                }
            }
            if (j >= SPK_N_IN)
                for (k = 0; k < KB; k++) {
                    spk_real acc = 0;
                    for (m = 0; m < ns; m++)
                        acc += st->filt_b[(times[m] * SPK_N + j) * KB + k];
                    st->elig[SPK_S * KA + j * KB + k] = acc;
                }
        }
    }
#endif
}

static void draw_block(spk_state *st)
{
    int k;
    for (k = 0; k < SPK_N * SPK_T; k++)
        st->uniforms[k] = spk_uniform(&st->rng);
}

int spk_decide(spk_state *st, const double *obs, int mode, spk_result *res)
{
    int det;
    spk_real f[SPK_N_IN];
    if (features(st, obs, f) != 0)
        return -1;
    temporal(st, f);
    if (mode == SPK_DETERMINISTIC)
        mode = SPK_DET_MODE == 0 ? -1 : SPK_DET_MODE == 1 ? SPK_THRESHOLD : SPK_DET_MODE == 2 ? SPK_MEDIAN : SPK_REGULAR;
    if (mode == -1) { /* vote: K sampled runs; K blocks of uniforms, then K ties */
        spk_pcg64 ties = st->rng;
        int votes[SPK_N_OUT], k, o, best = 0;
        spk_result one;
        spk_pcg64_advance(&ties, (uint64_t)SPK_VOTE * SPK_N * SPK_T);
        for (o = 0; o < SPK_N_OUT; o++)
            votes[o] = 0;
        res->latency = 0;
        res->no_spike = 1;
        res->spikes[0] = res->spikes[1] = res->spikes[2] = 0;
        res->sops = 0;
        for (k = 0; k < SPK_VOTE; k++) {
            draw_block(st);
            run(st, 0, spk_uniform(&ties), 0, &one);
            votes[one.action]++;
            if (one.latency > res->latency)
                res->latency = one.latency;
            res->no_spike = res->no_spike && one.no_spike;
            res->spikes[0] += one.spikes[0];
            res->spikes[1] += one.spikes[1];
            res->spikes[2] += one.spikes[2];
            res->sops += one.sops;
        }
        st->rng = ties;
        for (o = 1; o < SPK_N_OUT; o++)
            if (votes[o] > votes[best])
                best = o;
        res->action = best;
        return best;
    }
    if (mode < SPK_SAMPLED || mode > SPK_REGULAR)
        return -1;
    det = mode == SPK_SAMPLED ? 0 : mode == SPK_THRESHOLD ? 1 : mode == SPK_MEDIAN ? 2 : 3;
    draw_block(st); /* drawn in every mode: the stream stays in step with Python's */
    run(st, det, spk_uniform(&st->rng), 0, res);
    return res->action;
}

#if SPK_LEARN
const spk_real *spk_parameters(const spk_state *st) { return st->theta; }
const spk_real *spk_critic_weights(const spk_state *st) { return st->c; }

/* [f, cos(W f + b), 1] */
static void augment(const spk_real *f, spk_real *fa)
{
    int r, j;
    for (j = 0; j < SPK_N_IN; j++)
        fa[j] = f[j];
    for (r = 0; r < N_RANDOM; r++) {
        spk_real acc = 0;
        for (j = 0; j < SPK_N_IN; j++)
            acc += f[j] * critic_W[r * SPK_N_IN + j];
        fa[SPK_N_IN + r] = (spk_real)cos((double)(acc + critic_b[r]));
    }
    fa[SPK_N_IN + N_RANDOM] = 1;
}

static spk_real dot(const spk_real *a, const spk_real *b, int n)
{
    spk_real acc = 0;
    int k;
    for (k = 0; k < n; k++)
        acc += a[k] * b[k];
    return acc;
}

/* Adam ascent, per parameter: x += lr m_hat / (sqrt(v_hat) + eps) */
static void adam(spk_real *x, spk_real *m, spk_real *v, long *t, const spk_real *grad, int n, double lr,
                 const uint8_t *mask)
{
    int k;
    double c1, c2;
    *t += 1;
    c1 = 1.0 - pow(0.9, (double)*t);
    c2 = 1.0 - pow(0.999, (double)*t);
    for (k = 0; k < n; k++) {
        spk_real g = mask == NULL || mask[k] ? grad[k] : 0;
        m[k] *= (spk_real)0.9;
        m[k] += (spk_real)(1.0 - 0.9) * g;
        v[k] *= (spk_real)0.999;
        v[k] += (spk_real)(1.0 - 0.999) * g * g;
        x[k] = x[k] + (spk_real)lr * (m[k] / (spk_real)c1) / ((spk_real)sqrt((double)(v[k] / (spk_real)c2)) + (spk_real)1e-8);
    }
}

int spk_learn_act(spk_state *st, const double *obs, spk_result *res)
{
#if ENC_BOX && RUNNING
    int d;
    for (d = 0; d < SPK_N_OBS; d++)
        if (!isfinite(obs[d]))
            return -1;
    { /* running statistics of the observations (Chan et al., one sample) */
        double total = st->stats_count + 1.0;
        for (d = 0; d < SPK_N_OBS; d++) {
            double delta = obs[d] - st->stats_mean[d];
            st->stats_mean[d] = st->stats_mean[d] + delta * 1.0 / total;
            st->stats_m2[d] = st->stats_m2[d] + 0.0 + delta * delta * st->stats_count * 1.0 / total;
        }
        st->stats_count = total;
    }
#endif
    if (features(st, obs, st->feat) != 0)
        return -1;
    temporal(st, st->feat);
    draw_block(st);
    run(st, 0, spk_uniform(&st->rng), 1, res);
    return res->action;
}

int spk_learn_update(spk_state *st, double reward, const double *next_obs, int terminated, int truncated)
{
    spk_real f_next[SPK_N_IN], v, v_next, delta, grad[SPK_P > SPK_C ? SPK_P : SPK_C];
    spk_real decay = (spk_real)(GAMMA * LAM);
    int k;
    if (features(st, next_obs, f_next) != 0)
        return -1;
    augment(f_next, st->fa_next);
    v_next = dot(st->fa_next, st->c, SPK_C);
    augment(st->feat, st->fa);
    v = dot(st->fa, st->c, SPK_C);
    delta = (spk_real)reward + (spk_real)GAMMA * (terminated ? (spk_real)0 : v_next) - v;
    for (k = 0; k < SPK_P; k++)
        st->trace[k] = st->trace[k] * decay + st->elig[k];
    for (k = 0; k < SPK_C; k++) {
        st->ctrace[k] = st->ctrace[k] * decay + st->fa[k];
        grad[k] = delta * st->ctrace[k];
    }
    adam(st->c, st->cadam_m, st->cadam_v, &st->cadam_t, grad, SPK_C, CRITIC_LR, NULL);
    for (k = 0; k < SPK_P; k++)
        grad[k] = delta * st->trace[k];
    if (terminated || truncated) {
        for (k = 0; k < SPK_P; k++)
            st->trace[k] = 0;
        for (k = 0; k < SPK_C; k++)
            st->ctrace[k] = 0;
    }
    adam(st->theta, st->adam_m, st->adam_v, &st->adam_t, grad, SPK_P, LR, learnable);
    for (k = 0; k < SPK_P; k++) {
        spk_real x = st->theta[k];
        x = x > (spk_real)-W_CLIP ? x : (spk_real)-W_CLIP;
        st->theta[k] = x < (spk_real)W_CLIP ? x : (spk_real)W_CLIP;
    }
#if OUT_BIAS_CAP
    for (k = OUT0; k < SPK_N; k++) {
        spk_real *g = &st->theta[SPK_S * KA + SPK_N * KB + k];
        *g = *g < (spk_real)OUT_BIAS_MAX ? *g : (spk_real)OUT_BIAS_MAX;
    }
#endif
    return 0;
}
#endif
"""

__all__ = ["export_c", "footprint", "footprint_markdown", "operations_per_decision", "ExportError", "MODES"]
