"""The benchmark harness: a tiny two-agent, two-seed grid in parallel, its report, and resumption."""
import json

import numpy as np
import pytest

from spikerl.bench import cell_dir, run_bench
from spikerl.report import write_report


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    run_bench(agents=["fts-snn", "ppo"], envs=["CartPole-v1"], seeds=2, steps=1500, workers=2, out=out,
              use_wandb=False, eval_episodes=3, overrides={"batch_size": 64})
    return out


def test_bench_runs_every_cell_in_parallel(bench):
    for agent in ("fts-snn", "ppo"):
        for seed in (0, 1):
            summary = json.loads((cell_dir(bench, "CartPole-v1", agent, seed) / "summary.json").read_text())
            assert summary["status"] == "finished" and summary["steps"] >= 1500 and summary["seed"] == seed


def _row(text, agent, mode):
    """The cells of ``agent``'s row in ``mode`` in the first table of the report."""
    header = next(line for line in text.splitlines() if line.startswith("| agent | mode | final return"))
    row = next(line for line in text.splitlines() if line.startswith(f"| {agent} | {mode} |"))
    return dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))


def test_report_rows_are_the_runs_figures_in_their_own_mode(bench):
    """Each row's numbers come from that agent's summaries in that row's mode (recomputed here)."""
    from scipy.stats import trim_mean

    path = write_report(bench)
    text = path.read_text()
    for agent in ("fts-snn", "ppo"):
        sums = [json.loads((cell_dir(bench, "CartPole-v1", agent, s) / "summary.json").read_text()) for s in (0, 1)]
        for mode in ("deterministic", "sampled"):
            cells = _row(text, agent, mode)
            figs = sums if mode == "deterministic" else [x["sampled"] for x in sums]
            final = [x["final_mean_return"] if mode == "deterministic" else x["mean_return"] for x in figs]
            assert cells["final return IQM [95% CI]"].startswith(f"{trim_mean(final, 0.25):,.1f} [")
            assert cells["latency (steps)"] == f"{np.mean([x['latency'] for x in figs]):,.2f}"
            cmos = float(cells["energy / decision, 45 nm CMOS (nJ)"])
            if agent == "ppo":  # 4,480 MACs (4.6 pJ) + 128 tanh (10 pJ) + argmax or softmax-and-draw
                action = 0.9 if mode == "deterministic" else 2 * 10 + 2 * 0.9 + 0.6
                assert cmos == pytest.approx((4480 * 4.6 + 128 * 10 + action) / 1000, abs=1e-3)
                assert cells["energy / decision, Loihi (nJ)"] == "-" and cells["MACs / decision"] == "4,480"
            else:  # more than its accumulates alone: every operation is counted
                sops = np.mean([x["sops_per_decision"] for x in figs])
                assert cmos > sops * 0.9 / 1000 and float(cells["energy / decision, Loihi (nJ)"]) > sops * 23.6 / 1000
        assert _row(text, agent, "deterministic")["solved (seeds)"] == f"{sum(x['first_solved_step'] is not None for x in sums)}/2"
        assert _row(text, agent, "deterministic")["parameters"] == f"{int(np.mean([x['n_parameters'] for x in sums])):,}"
    assert "| fts-snn on CartPole-v1, sampled | synaptic accumulates |" in text
    assert "| ppo on CartPole-v1, deterministic | macs |" in text and "Davies" in text and "Horowitz" in text
    png = path.parent / "CartPole-v1_curves.png"
    assert png.is_file() and png.stat().st_size > 1000


def test_rerun_does_not_redo_finished_runs(bench, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in (bench / "runs").glob("*/summary.json")}
    run_bench(agents=["fts-snn", "ppo"], envs=["CartPole-v1"], seeds=2, steps=1500, workers=2, out=bench,
              use_wandb=False, eval_episodes=3, overrides={"batch_size": 64})
    assert "4 already done, 0 to run" in capsys.readouterr().err
    assert stamps == {p: p.stat().st_mtime_ns for p in (bench / "runs").glob("*/summary.json")}


def test_report_says_when_agents_finished_different_seeds(bench, tmp_path):
    import shutil

    assert "differ" not in write_report(bench, tmp_path / "full").read_text()
    partial = tmp_path / "partial"
    shutil.copytree(bench / "runs", partial / "runs")
    (cell_dir(partial, "CartPole-v1", "ppo", 1) / "summary.json").unlink()  # an unfinished cell
    text = write_report(partial).read_text()
    assert "Finished seeds differ between agents: fts-snn 0, 1; ppo 0." in text


def test_default_agent_report_prices_ann_rows_from_their_own_macs(tmp_path):
    """benchmarks/default_agent.py --report on committed cells: a PPO row's MACs and CMOS energy
    are its cell's measured MACs priced by the table, in each mode; a spiking row's MACs are its
    encoder's (the random directions)."""
    import importlib.util
    import shutil
    from pathlib import Path

    from spikerl.energy import CMOS_45NM, ann_ops, energy

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("default_agent", root / "benchmarks" / "default_agent.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cells = root / "results" / "default" / "cells"
    for name in ("CartPole-v1__ppo__s100.json", "CartPole-v1__fts-snn__s100.json"):
        shutil.copy(cells / name, tmp_path / name)
    cell = json.loads((tmp_path / "CartPole-v1__ppo__s100.json").read_text())
    text = mod.report(tmp_path)
    rows = {tuple(c.strip() for c in line.split("|")[1:5:3]): line.split("|")
            for line in text.splitlines() if line.startswith("| ppo") or line.startswith("| fts-snn")}
    for mode in ("sampled", "deterministic"):
        row = rows[("ppo", mode)]
        macs = cell[mode]["macs_per_decision"]
        assert float(row[11].replace(",", "")) == macs == 4480
        facts = mod.agent_facts("CartPole-v1", "ppo", {})
        want = energy(ann_ops(macs=macs, activations=facts["activations"], n_actions=facts["n_actions"],
                              deterministic=mode != "sampled"), CMOS_45NM)["total"] / 1000
        assert float(row[12]) == pytest.approx(want, abs=5e-4)
    snn = json.loads((tmp_path / "CartPole-v1__fts-snn__s100.json").read_text())
    facts = mod.agent_facts("CartPole-v1", "fts-snn", snn["overrides"])
    assert facts["encoder_macs"] == 24 * 4  # the default's 24 directions of CartPole's 4 dimensions
    spiking = [row for (agent, _), row in rows.items() if agent == "fts-snn"]
    assert len(spiking) == 4  # sampled and the three deterministic networks
    for row in spiking:
        assert float(row[11]) == facts["encoder_macs"]


def _default_agent_module():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("default_agent", root / "benchmarks" / "default_agent.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, root


def test_rliable_report_compares_the_spiking_agent_with_every_ann(tmp_path):
    """P(spiking > ANN) for each ANN with cells on every task (both modes and sampled vs
    deterministic); an ANN missing on a task is left out; mismatched seeds are an error."""
    import shutil

    mod, root = _default_agent_module()
    cells, src = tmp_path / "cells", root / "results" / "default" / "cells"
    cells.mkdir()
    for env in ("CartPole-v1", "Acrobot-v1"):
        for s in (100, 101, 102):
            for agent in ("fts-snn", "ppo"):
                shutil.copy(src / f"{env}__{agent}__s{s}.json", cells)
            a2c = json.loads((src / f"{env}__ppo__s{s}.json").read_text())  # an A2C that scores 1 below PPO
            a2c["agent"] = "a2c"
            for mode in ("sampled", "deterministic"):
                a2c[mode]["mean_return"] -= 1.0
            (cells / f"{env}__a2c__s{s}.json").write_text(json.dumps(a2c))
    dqn = json.loads((src / "CartPole-v1__ppo__s100.json").read_text())  # CartPole only: left out
    dqn["agent"] = "dqn"
    (cells / "CartPole-v1__dqn__s100.json").write_text(json.dumps(dqn))
    text = mod.rliable_report(cells, tmp_path / "out", reps=50)
    pairs = [tuple(c.strip() for c in line.split("|")[1:3]) for line in text.splitlines()
             if line.startswith("| fts-snn") and "P(X" not in line and line.count("|") == 4]
    own = mod.det_outputs(json.loads((cells / "CartPole-v1__fts-snn__s100.json").read_text()))
    assert pairs == [(x, f"{ann} {m}") for ann in ("ppo", "a2c") for x, m in  # the spiking cells' own deterministic mode
                     (("fts-snn sampled", "sampled"), (f"fts-snn {own}", "deterministic"),
                      ("fts-snn sampled", "deterministic"))]
    assert "dqn" not in text and (tmp_path / "out" / "probability_of_improvement.png").is_file()
    (cells / "Acrobot-v1__a2c__s102.json").unlink()
    with pytest.raises(ValueError, match="a2c on Acrobot-v1 has seeds \\[100, 101\\]"):
        mod.rliable_report(cells, tmp_path / "out", reps=50)


def test_readme_headline_table_is_the_reports_rows(tmp_path):
    """The compact README table carries, per mode, the same return IQM, seeds at the threshold
    and CMOS energy as the full report of the same cells; it replaces only the marked block."""
    import shutil

    mod, root = _default_agent_module()
    src = root / "results" / "default" / "cells"
    for name in ("CartPole-v1__ppo__s100.json", "CartPole-v1__ppo__s101.json",
                 "CartPole-v1__fts-snn__s100.json", "CartPole-v1__fts-snn__s101.json"):
        shutil.copy(src / name, tmp_path / name)
    full = {tuple(c.strip() for c in line.split("|")[1:5:3]): line.split("|")
            for line in mod.report(tmp_path).splitlines() if line.startswith(("| ppo", "| fts-snn"))}
    short = mod.headline(tmp_path).splitlines()[2:]
    spiking = json.loads((tmp_path / "CartPole-v1__fts-snn__s100.json").read_text())
    assert len(short) == sum(k in spiking for k in mod.MODE_KEYS) + 2  # each spiking mode; ppo: both modes
    agent = ""
    for line in short:
        c = [x.strip() for x in line.split("|")]
        agent = c[2].split(" ")[0] or agent
        ref = full[(agent, c[3])]  # both tables name a mode alike
        assert c[4] == ref[5].strip() and c[5] == ref[6].strip()  # IQM, seeds >= threshold
        assert float(c[8]) == pytest.approx(float(ref[12]), abs=0.051)  # CMOS nJ
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{mod.README_START}\nold table\n{mod.README_END}\nrest\n")
    mod.write_readme_table(readme, "NEW", "cmd")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{mod.README_END}\nrest\n")
    assert "NEW" in text and "old table" not in text and "written by: cmd" in text
    readme.write_text(text + "<!-- tuned table: start -->\n<!-- tuned table: end -->\n")
    mod.write_readme_table(readme, "TUNED", "cmd2", block="tuned")
    assert readme.read_text().count("NEW") == 1 and "TUNED" in readme.read_text().split("tuned table: start")[1]
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="headline table: start"):
        mod.write_readme_table(readme, "NEW", "cmd")


def test_a_cells_deterministic_mode_is_the_agents_own(tmp_path):
    """A spiking cell evaluates sampled, vote, threshold, regular in that order whatever the
    agent's default (the vote draws from the predict generator); its ``deterministic`` figures
    are the default's, priced and named as that mode: a cell of the threshold default reads like
    the same figures filed under the vote default, row for row."""
    mod, root = _default_agent_module()
    assert mod.spiking_modes("threshold") == [("vote", True, "vote"), ("deterministic", True, "threshold"),
                                              ("regular_net", True, "regular")]
    assert mod.spiking_modes("vote") == [("deterministic", True, "vote"), ("threshold_net", True, "threshold"),
                                         ("regular_net", True, "regular")]
    assert mod.spiking_modes("regular") == [("vote", True, "vote"), ("threshold_net", True, "threshold"),
                                            ("deterministic", True, "regular")]
    assert mod.spiking_modes("median") == [("vote", True, "vote"), ("threshold_net", True, "threshold"),
                                           ("regular_net", True, "regular"), ("deterministic", True, "median")]
    src = root / "results" / "default" / "cells"
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    for s in (100, 101):  # the previous default's cells (rate code, vote), untagged here
        name = f"CartPole-v1__fts-snn__s{s}.json"
        cell = json.loads((src / f"CartPole-v1__fts-snn__rate-code-vote__s{s}.json").read_text())
        cell["tag"] = ""
        (old / name).write_text(json.dumps(cell))
        assert mod.det_outputs(cell) == "vote"
        cell["vote"], cell["deterministic"] = cell["deterministic"], cell.pop("threshold_net")
        cell["deterministic_outputs"] = "threshold"
        (new / name).write_text(json.dumps(cell))

    def rows(folder):
        return {line.split("|")[4].strip(): [c.strip() for c in line.split("|")[5:14]]
                for line in mod.report(folder).splitlines() if line.startswith("| fts-snn |")}

    a, b = rows(old), rows(new)
    assert set(a) == {"sampled", "deterministic: vote of 15", "threshold network"}
    assert set(b) == {"sampled", "vote of 15", "deterministic: threshold network"}
    assert b["deterministic: threshold network"] == a["threshold network"]  # figures and CMOS/Loihi energy
    assert b["vote of 15"] == a["deterministic: vote of 15"]
    assert "deterministic: threshold network" in mod.headline(new)


def test_ablation_table_puts_each_lever_beside_the_default_on_its_seeds(tmp_path):
    """--ablation: per task the default's cells on the levers' seeds (other seeds left out),
    then one row per lever with its setting and the default's value; each mode read from the
    key the cell filed it under; a lever seed without a default cell is a clear error."""
    mod, root = _default_agent_module()
    default, levers = tmp_path / "default", tmp_path / "levers"
    default.mkdir(), levers.mkdir()
    src = json.loads((root / "results" / "default" / "cells" / "CartPole-v1__fts-snn__s100.json").read_text())

    def cell(seed, tag, overrides, sampled, threshold, vote, det="threshold"):
        c = json.loads(json.dumps(src))
        c.update(seed=seed, tag=tag, overrides=overrides, deterministic_outputs=det)
        for key in ("vote", "threshold_net", "regular_net"):
            c.pop(key, None)
        for key, value in (("sampled", sampled), ("deterministic", threshold if det == "threshold" else vote),
                           ("vote" if det == "threshold" else "threshold_net", vote if det == "threshold" else threshold)):
            c[key] = dict(src["sampled"], mean_return=float(value))
        return c

    for seed, values in ((100, (480, 500, 499)), (101, (490, 500, 500)), (102, (100, 100, 100))):
        (default / f"CartPole-v1__fts-snn__s{seed}.json").write_text(json.dumps(cell(seed, "", {}, *values)))
    for seed, values in ((100, (300, 200, 470)), (101, (476, 480, 481))):  # filed under the vote default
        (levers / f"CartPole-v1__fts-snn__ratio-joint__s{seed}.json").write_text(
            json.dumps(cell(seed, "ratio-joint", {"ratio": "joint"}, *values, det="vote")))
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in mod.ablation(default, levers).splitlines()[2:]]
    assert rows == [
        ["CartPole-v1 (100k), 100-101", "none (the default)", "485.0 (2/2; 480, 490)", "500.0 (2/2; 500, 500)",
         "499.5 (2/2; 499, 500)"],
        ["", "ratio=joint (neuron)", "388.0 (1/2; 300, 476)", "340.0 (1/2; 200, 480)", "475.5 (1/2; 470, 481)"]]
    screen = mod.ablation(default, levers, heading="candidate switched on").splitlines()  # --screen: same rows
    assert screen[0].startswith("| task (steps), seeds | candidate switched on: setting (default) |")
    assert screen[2:] == mod.ablation(default, levers).splitlines()[2:]
    # a base trained under an earlier default records what differs from today's; the rows name
    # the base's value, and leave out what a lever shares with the base
    for seed, values in ((100, (480, 500, 499)), (101, (490, 500, 500))):
        (default / f"CartPole-v1__fts-snn__s{seed}.json").write_text(
            json.dumps(cell(seed, "", {"hidden_rule": "joint"}, *values)))
        (levers / f"CartPole-v1__fts-snn__ratio-joint__s{seed}.json").write_text(
            json.dumps(cell(seed, "ratio-joint", {"hidden_rule": "joint", "ratio": "joint"}, 300, 200, 470)))
        (levers / f"CartPole-v1__fts-snn__post__s{seed}.json").write_text(
            json.dumps(cell(seed, "post", {"hidden_rule": "posterior"}, 500, 500, 500)))
    names = [line.split("|")[2].strip() for line in mod.ablation(default, levers).splitlines()[2:]]
    assert names == ["none (the default; hidden_rule=joint)", "hidden_rule=posterior (joint)", "ratio=joint (neuron)"]
    # a lever on fewer seeds than the default row pools: the default's IQM on its own seeds beside it
    (levers / "CartPole-v1__fts-snn__short__s101.json").write_text(
        json.dumps(cell(101, "short", {"hidden_rule": "joint", "n_epochs": 5}, 400, 450, 460)))
    rows = {line.split("|")[2].strip(): line.split("|")[3].strip() for line in mod.ablation(default, levers).splitlines()[2:]}
    assert rows["n_epochs=5 (10)"] == "400.0 (0/1; 400; default 490.0)"
    assert rows["ratio=joint (neuron)"] == "300.0 (0/2; 300, 300)"  # on the default row's seeds: nothing beside
    (levers / "CartPole-v1__fts-snn__short__s101.json").unlink()
    (default / "CartPole-v1__fts-snn__s101.json").write_text(json.dumps(cell(101, "", {}, 490, 500, 500)))
    with pytest.raises(ValueError, match="default fts-snn cells on CartPole-v1 differ in overrides"):
        mod.ablation(default, levers)
    (default / "CartPole-v1__fts-snn__s101.json").unlink()
    with pytest.raises(ValueError, match=r"no default fts-snn cell on CartPole-v1 for seeds \[101\]"):
        mod.ablation(default, levers)


def test_relabel_files_the_same_figures_under_another_deterministic_mode():
    """A cell relabelled to another deterministic mode it holds has that mode's figures under
    ``deterministic`` and the former one's under its own key; relabelled back it is the cell
    again; a mode the cell lacks is a clear error."""
    mod, root = _default_agent_module()
    cell = json.loads((root / "results" / "default" / "cells" / "Acrobot-v1__fts-snn__s101.json").read_text())
    own = mod.det_outputs(cell)
    other = next(out for _, out in mod.SPIKING_MODES if out != own)
    new = mod.relabel(cell, other)
    assert new["deterministic_outputs"] == other and new["deterministic"] == mod.mode_result(cell, other)
    assert mod.mode_result(new, own) == cell["deterministic"] and new["sampled"] == cell["sampled"]
    figures = lambda c: sorted(json.dumps(c[k], sort_keys=True) for k in mod.MODE_KEYS if k in c)  # noqa: E731
    assert figures(new) == figures(cell)
    assert mod.relabel(new, own) == cell
    lacking = {k: v for k, v in cell.items() if k != "vote"}
    lacking["deterministic_outputs"] = "threshold" if own != "threshold" else "regular"
    with pytest.raises(ValueError, match="has no 'vote' figures"):
        mod.relabel(lacking, "vote")


def test_seed_ranges_name_exactly_the_seeds_a_row_has():
    """A row of seeds 100-103 and 109 says so (not "100-109"), and parse_seeds reads it back."""
    mod, _ = _default_agent_module()
    for seeds in ([100, 101, 102, 103, 109], [5], [0, 2, 4], list(range(100, 110)), [109, 100, 101]):
        text = mod.seed_ranges(seeds)
        assert mod.parse_seeds(text.replace(" ", "")) == sorted(seeds)
    assert mod.seed_ranges([100, 101, 102, 103, 109]) == "100-103, 109"
