"""The energy model: every operation kind counted, priced per table, sources stated."""
import pytest

from spikerl.energy import CMOS_45NM, KINDS, LOIHI, ann_ops, breakdown_markdown, energy, spiking_ops


def test_spiking_counts_follow_the_network_and_the_mode():
    kw = dict(n_neurons=66, n_inputs=32, encoder_exps=32, latency=5.0, spikes=90.0, sops=1200.0)
    s = spiking_ops(mode="sampled", **kw)
    assert s["neuron_updates"] == 5 * 34 and s["comparisons"] == 5 * 66
    assert s["random_draws"] == 5 * 66 + 1 and s["nonlinearities"] == 5 * 34 + 32
    t = spiking_ops(mode="threshold", **kw)
    assert t["random_draws"] == 0 and t["nonlinearities"] == 32 and t["neuron_updates"] == s["neuron_updates"]
    v = spiking_ops(mode="vote", vote_samples=15, **kw)
    assert v["neuron_updates"] == 15 * s["neuron_updates"] and v["random_draws"] == 15 * (5 * 66 + 1)
    assert v["synaptic_accumulates"] == 1200.0  # already the sum over the samples


def test_pricing_is_count_times_cost_and_loihi_has_no_macs():
    ops = spiking_ops(mode="sampled", n_neurons=10, n_inputs=4, encoder_exps=4, latency=2.0, spikes=7.0, sops=30.0)
    cm = energy(ops, CMOS_45NM)
    assert cm["total"] == pytest.approx(sum(ops[k] * CMOS_45NM.pj[k] for k in KINDS))
    assert cm["synaptic_accumulates"] == pytest.approx(30 * 0.9)
    lo = energy(ops, LOIHI, encoder_exps=4)
    expected = 30 * 23.6 + 2 * 6 * 52.0 + 7 * 1.7 + 4 * CMOS_45NM.pj["nonlinearities"]  # encoder on the host
    assert lo["total"] == pytest.approx(expected)
    a = ann_ops(macs=4480, activations=128, n_actions=2, deterministic=False)
    assert energy(a, LOIHI) is None
    assert energy(a, CMOS_45NM)["total"] == pytest.approx(4480 * 4.6 + 128 * 10 + 2 * 10 + 2 * 0.9 + 0.6)
    d = ann_ops(macs=4480, activations=128, n_actions=2, deterministic=True)
    assert d["random_draws"] == 0 and d["nonlinearities"] == 0


def test_breakdown_lists_every_counted_kind_with_both_tables():
    ops = spiking_ops(mode="sampled", n_neurons=10, n_inputs=4, encoder_exps=0, latency=2.0, spikes=7.0, sops=30.0)
    text = breakdown_markdown([("snn", ops, {"45 nm CMOS": energy(ops, CMOS_45NM), "Loihi": energy(ops, LOIHI)})])
    for kind in ("synaptic accumulates", "neuron updates", "nonlinearities", "comparisons", "random draws", "spikes"):
        assert f"| snn | {kind} |" in text
    assert "27.0" in text and "708.0" in text  # 30 accumulates: 0.9 and 23.6 pJ each


def test_ann_parameters_and_macs_count_the_acting_network_only():
    from stable_baselines3 import DQN, PPO

    from spikerl.baselines import macs_per_forward, n_parameters

    for algo in (PPO, DQN):  # 4-64-64-2: weights 4*64 + 64*64 + 64*2 = 4,480, biases 130
        model = algo("MlpPolicy", "CartPole-v1", device="cpu")
        assert macs_per_forward(model) == 4480 and n_parameters(model) == 4480 + 130


def test_network_facts_of_a_box_action_ppo_count_its_action_dimensions():
    from stable_baselines3 import PPO

    from spikerl.energy import network_facts

    facts = network_facts(PPO("MlpPolicy", "Pendulum-v1", device="cpu", seed=0))
    assert facts == {"kind": "ann", "activations": 128, "n_actions": 1}


def test_the_encoders_projections_are_counted_as_macs_and_priced_on_the_host():
    """An encoder with random projections adds ``n_projections x obs_dim`` MACs per decision:
    counted on the spiking side, priced as MACs on 45 nm CMOS and, on Loihi (which has no
    MACs), on the host as the encoder's exponentials are."""
    from spikerl import SpikingAgent
    from spikerl.energy import network_facts

    facts = network_facts(SpikingAgent("Acrobot-v1", n_projections=5))
    assert facts["encoder_macs"] == 5 * 6 and facts["encoder_exps"] == (6 + 5) * 8
    assert network_facts(SpikingAgent("Acrobot-v1", n_projections=0))["encoder_macs"] == 0
    ops = spiking_ops(mode="sampled", n_neurons=10, n_inputs=4, encoder_exps=4, latency=2.0, spikes=7.0, sops=30.0,
                      encoder_macs=30)
    assert ops["macs"] == 30
    plain = spiking_ops(mode="sampled", n_neurons=10, n_inputs=4, encoder_exps=4, latency=2.0, spikes=7.0, sops=30.0)
    assert energy(ops, CMOS_45NM)["total"] == pytest.approx(energy(plain, CMOS_45NM)["total"] + 30 * 4.6)
    lo = energy(ops, LOIHI, encoder_exps=4, encoder_macs=30)
    assert lo is not None
    assert lo["total"] == pytest.approx(energy(plain, LOIHI, encoder_exps=4)["total"] + 30 * CMOS_45NM.pj["macs"])


def test_one_decisions_energy_follows_the_network_and_the_mode():
    """``decision_energy`` (what every table row is priced by): a spiking network's sampled
    mode draws and prices its encoder's MACs on Loihi's host; its threshold mode draws nothing;
    an ANN's greedy mode has no softmax and no Loihi figure."""
    from spikerl.energy import decision_energy

    facts = {"kind": "spiking", "n_neurons": 10, "n_inputs": 4, "encoder_exps": 4, "encoder_macs": 30,
             "vote_samples": 5}
    fig = {"latency": 2.0, "spikes_per_decision": 7.0, "sops_per_decision": 30.0}
    ops, en = decision_energy(facts, fig, sampled=True)
    want = spiking_ops(mode="sampled", n_neurons=10, n_inputs=4, encoder_exps=4, latency=2.0, spikes=7.0, sops=30.0,
                       encoder_macs=30)
    assert ops == want
    assert en["Loihi"]["total"] == pytest.approx(energy(want, LOIHI, encoder_exps=4, encoder_macs=30)["total"])
    assert en["45 nm CMOS"]["total"] == pytest.approx(energy(want, CMOS_45NM)["total"])
    ops, _ = decision_energy(facts, fig, sampled=False, outputs="threshold")
    assert ops["random_draws"] == 0 and ops["comparisons"] == 2.0 * 10
    ops, _ = decision_energy(facts, fig, sampled=False, outputs="vote")
    assert ops["random_draws"] == 5 * 2.0 * 10 + 5
    ann = {"kind": "ann", "activations": 128, "n_actions": 2}
    ops, en = decision_energy(ann, {"macs_per_decision": 4480}, sampled=False)
    assert ops == ann_ops(macs=4480, activations=128, n_actions=2, deterministic=True)
    assert en["Loihi"] is None and en["45 nm CMOS"]["total"] == pytest.approx(4480 * 4.6 + 128 * 10 + 1 * 0.9)
    assert decision_energy(ann, {"macs_per_decision": 4480}, sampled=True)[0]["random_draws"] == 1
