"""The report's words and numbers: signs spelled as better/worse, failures counted once the
same way in every section, cached results marked as such, empty sections explained, retries,
tokens and cost per model."""
from __future__ import annotations

import json
import statistics

from click.testing import CliRunner

import known_run
from darwin_git.cli import cli
from darwin_git.population.journal import Journal
from darwin_git.report import collect, render_markdown


def test_failures_are_counted_once_the_same_way_everywhere(population, git):
    ids = known_run.build(population, git)
    d = collect(population)
    g1, g2 = d["generations"]
    # generation 1: the journal says failed=0, but c3 did not train; generation 2: the
    # proposal that made no commit
    assert (g1["failed"], g1["failed_evaluations"], g1["failed_proposals"]) == (1, 1, 0)
    assert (g2["failed"], g2["failed_evaluations"], g2["failed_proposals"]) == (1, 0, 1)
    assert d["totals"]["failed"] == d["failures"]["total"] == g1["failed"] + g2["failed"] == 2
    assert d["failures_by_cause"] == {"train_failed: out_of_memory": 1,
                                      "proposal: diff_failed": 1}
    md = render_markdown(d)
    assert "2 of 8 decided candidates failed (25.0%): 1 proposal(s) made no commit, " \
           "1 did not train or score." in md
    assert "| 1 | 3.2000 | 3.3000 | agent-00 | 3.00% | 2.55% | 3 | 0 | 1 | 1 | 1 | 300 |" in md
    node = next(n for n in d["nodes"] if n["id"] == ids["c3"])
    assert (node["outcome"], node["cause"], node["detail"]) == \
        ("failed", "out_of_memory", "killed: out of memory")


def test_words_say_better_or_worse(population, git):
    known_run.build(population, git)
    d = collect(population)
    md = render_markdown(d)
    seed = statistics.fmean(known_run.NOISE)
    assert f"val_loss 3.1000: {seed - 3.1:.4f} lower (better) than the seed's {seed:.4f}" in md
    assert "perplexity 22.20 vs the seed's 30.88, 28.1% lower (better)" in md
    assert "+" not in "".join(d["summary"])  # no bare signs to decode
    assert "0.1000 lower (better) than its parent" in md  # the lineage's RMSNorm step
    assert "| crossover | 1 | 1 | 0 | 0.0500 lower (better) |" in md



def test_the_summary_says_the_acceptance_rule_and_what_it_decided(population, git):
    ids = known_run.build(population, git)
    d = collect(population)
    md = render_markdown(d)
    assert ("A change is promoted by the acceptance rule: one-sided paired t-test, up to 3 "
            "seeds, 95% confidence, mean gain >= 0.02 nats.") in md  # the rule it was run by
    assert "σ sets only pruning's margin: an agent within k·σ = 0.0100 (k = 1)" in md
    assert ("Verdicts: 3 promoted after 3 seeds (p = 0.001, 0.004, 0.004); 2 rejected after 1 "
            "seed, 1 after 3 seeds (p = 0.21).") in d["summary"]
    cross = next(n for n in d["nodes"] if n["id"] == ids["cross"])
    assert cross["outcome"] == "rejected" and cross["verdict"]["n"] == 3
    assert cross["verdict"]["reason"].startswith("rejected after 3 seeds: -0.0100")


def test_retries_tokens_and_cost_per_model(population, git):
    known_run.build(population, git)
    d = collect(population)
    small = next(m for m in d["models"] if m["model"] == "m-small")
    # c1 took 2 round trips, the failed proposal 3: three retries in all
    assert (small["proposals"], small["attempts"], small["retries"]) == (5, 8, 3)
    assert (small["tokens"], small["cost_usd"]) == (650, 0.004)
    assert d["totals"]["retries"] == 3 and [g["retries"] for g in d["generations"]] == [1, 2]
    assert "| m-small | 5 | 4 | 1 | 0 | 3 | 8 | 3 | 650 | 0.0040 |" in render_markdown(d)


def test_a_cached_result_is_not_a_new_measurement(population, git):
    ids = known_run.build(population, git)
    c5 = next(n for n in collect(population)["nodes"] if n["id"] == ids["c5"])
    assert c5["cached"] and c5["cached_from"] == ids["c1"] and c5["measurements"] == 0
    # Selection's best of a third generation is agent-02, whose result is a copy of c1's.
    journal = Journal(population.repo)
    known_run.done(journal, 3, population, "agent-02", 3.2, 0.030, proposed=0, failed=0,
                   advanced=0, replaced=0, tokens=0, cost=0.0)
    d = collect(population)
    g2, g3 = d["generations"][1:]
    assert g2["new_measurements"] == 3 and g2["cached"] == 1  # human, c4, crossover; c5 copied
    assert g3["best_mfu_cached"] and g3["best_mfu_source"] == ids["c1"]
    assert g3["new_measurements"] == 0 and g3["median_new_mfu"] is None
    assert f"| 3.00% (cached from `{ids['c1'][:10]}`) |" in render_markdown(d)


def test_empty_sections_say_why(population):
    """Nothing was promoted in two generations: the lineage is empty, the fitness line flat
    (both say what the verdicts were), and the best agent's MFU is the noise-floor runs' (not
    a new measurement)."""
    seed = population.tip("agent-00")
    journal = Journal(population.repo)
    for i, loss in enumerate(known_run.NOISE):
        population.add_result(seed, known_run.result(loss, seed=i, generation=0))
    journal.append({"phase": "noise", "generation": 0, "sigma": known_run.SIGMA,
                    "mean": statistics.fmean(known_run.NOISE), "losses": known_run.NOISE,
                    "budget_s": known_run.BUDGET, "repeats": 3}, "Noise floor")
    verdicts = {1: ("rejected after 1 seed: +0.0250 nats worse on seed 0", 1, None),
                2: ("rejected after 3 seeds: -0.0100 ± 0.0080 nats over 3 seeds, p = 0.210 "
                    "(needs p < 0.05 and a gain of at least 0.02 nats)", 3, 0.21)}
    for g in (1, 2):
        child = known_run.candidate(population, g, "agent-00.agent-01", seed,
                                    known_run.mutation(f"Tweak {g}", f"lr = {g}.01e-3\n"),
                                    "agent-00", "agent-01")
        population.add_result(child, known_run.result(3.425, generation=g))
        reason, n, p = verdicts[g]
        known_run.done(journal, g, population, "agent-00", 3.43, 0.02, proposed=1, failed=0,
                       advanced=0, replaced=0, tokens=100, cost=0.001, verdicts=[
                           known_run.verdict(child, "agent-00", seed, "reject", reason, n, p)])
    d = collect(population)
    assert d["lineage"] == []
    assert d["lineage_note"] == (
        "agent-00 still has the seed's code: no change was promoted: 1 rejected after 1 seed, "
        "1 after 3 seeds (p = 0.21).")
    assert d["summary"][1] == "Best agent: agent-00, still the seed's code (val_loss 3.4300)."
    assert [g["best_mfu_new"] for g in d["generations"]] == [False, False]
    md = render_markdown(d)
    assert d["lineage_note"] in md
    assert ("The best line is flat: no change was promoted: 1 rejected after 1 seed, 1 after "
            "3 seeds (p = 0.21), so every agent's best is still the seed's code.") in md
    assert "| 2.00% (measured in the noise-floor runs) | 2.00% |" in md
    assert "None of the 2 decided candidates failed." in md


def test_report_command_writes_both_pages(population, git, tmp_path):
    known_run.build(population, git)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["report", "--repo", str(population.path), "--out",
                                   str(out), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["report"] == str(out / "report.html") and (out / "report.html").is_file()
    assert data["markdown"] == str(out / "report.md")
    assert (out / "report.md").is_file() and (out / "mfu.png").is_file()
    assert len(data["nodes"]) == known_run.COMMITS + known_run.ATTEMPTS
    page = (out / "report.html").read_text()
    # text from commits is data, never markup: it cannot close the data's <script> element
    assert known_run.MARKUP not in page and page.count("<script") == 2
    embedded = page.split('id="darwin-data">')[1].split("</script>")[0]
    assert any(n["reasoning"] == known_run.MARKUP for n in json.loads(embedded)["nodes"])


def test_a_flat_best_line_after_an_improvement_says_where_the_best_came_from():
    from darwin_git.report_tree import flat_note

    d = {"generations": [{"generation": 1, "best": 2.55}, {"generation": 2, "best": 2.55}],
         "winner": {"seed_code": False}, "noise": {"mean": 2.59}}
    assert flat_note(d) == ("The best line is flat: the best agent of generation 1 (0.0400 lower "
                            "(better) than the seed's 2.5900) was not beaten by a later "
                            "generation.")
