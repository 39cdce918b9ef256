"""rliable-based statistics: normalisation, IQM intervals, aggregates and P(improvement)."""
import numpy as np
import pytest
from scipy.stats import trim_mean

from spikerl.stats import aggregate, iqm_ci, normalise, probability_of_improvement, random_score


def test_random_score_is_a_random_policy_and_normalises_to_zero():
    r = random_score("CartPole-v1")
    assert 15 < r < 35  # a random CartPole policy lasts ~22 steps
    assert normalise([r, 475.0], "CartPole-v1", 475.0) == pytest.approx([0.0, 1.0])
    assert random_score("spikerl/WindyGridWorld-v0", episodes=5) <= -100


def test_iqm_interval_brackets_the_trimmed_mean():
    x = np.random.default_rng(0).normal(size=40)
    point, lo, hi = iqm_ci(x)
    assert point == pytest.approx(trim_mean(x, 0.25))
    assert lo < point < hi and hi - lo < 1.0


def test_aggregate_and_improvement_order_a_dominating_agent_first():
    rng = np.random.default_rng(1)
    good = 1.0 + 0.01 * rng.standard_normal((10, 2))
    bad = 0.5 + 0.01 * rng.standard_normal((10, 2))
    agg = aggregate({"good": good, "bad": bad}, reps=200)
    assert agg["good"]["iqm"][0] > agg["bad"]["iqm"][0]
    assert agg["bad"]["optimality_gap"][0] == pytest.approx(0.5, abs=0.02)
    poi = probability_of_improvement({"good": good, "bad": bad}, [("good", "bad"), ("bad", "good")], reps=200)
    assert poi["good,bad"][0] == 1.0 and poi["bad,good"][0] == 0.0
