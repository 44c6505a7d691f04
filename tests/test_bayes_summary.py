"""What a user reads after sampling: the summary table and the problem messages, exactly.

The numbers behind them (ESS, R-hat, MCSE, HDI) are checked against ArviZ in test_bayes.py;
here the values are given, and the text must say them: the right cells, the right counts.
"""

import numpy as np
import pytest

from bayesgen.bayes import diagnostics as dg


def _summary(names, r_hat=1.0, ess=1000.0):
    rows = [[0.5 + i, 0.25, 0.001, -1.0, 2.0, ess, ess, r_hat] for i in range(len(names))]
    return dg.Summary(names, np.array(rows), prob=0.9)


def test_table_text_is_aligned_and_formats_each_column():
    s = dg.Summary(["mu", "tau_long_name"], np.array([[1.23456, 0.5, 0.0123, -0.1, 2.5, 812.4, 95.6, 1.00149],
                                                       [np.nan, 12345.678, 1e-5, 0.0, 1.0, 4000.0, 3999.5, 1.2]]), 0.9)
    assert len(s) == 2
    header, first, second = (line.split() for line in str(s).splitlines())
    assert header == ["param", "mean", "sd", "mcse_mean", "hdi_5%", "hdi_95%", "ess_bulk", "ess_tail", "r_hat"]
    assert first == ["mu", "1.235", "0.5", "0.0123", "-0.1", "2.5", "812", "96", "1.001"]
    assert second == ["tau_long_name", "nan", "1.235e+04", "1e-05", "0", "1", "4000", "4000", "1.200"]
    lines = str(s).splitlines()
    assert len({len(line) for line in lines}) == 1  # one width: numbers right-aligned, names left
    assert lines[1].startswith("mu ") and lines[2].startswith("tau_long_name ")
    assert lines[1].endswith("1.001") and lines[0].endswith("r_hat")
    assert s["mu"]["ess_tail"] == 95.6 and set(s["mu"]) == set(dg.SUMMARY_COLUMNS)


def test_hdi_headers_name_the_interval():
    assert dg.Summary(["a"], np.zeros((1, 8)), 0.8)._headers()[4:6] == ["hdi_10%", "hdi_90%"]
    assert (dg.Summary(["a"], np.zeros((1, 8)), 0.95).to_csv_text().splitlines()[0].split(",")[4:6]
            == ["hdi_2.5%", "hdi_97.5%"])


@pytest.mark.parametrize("n, tail", [(8, "theta[7]"), (9, "theta[7], ...")])
def test_unknown_name_lists_at_most_eight(n, tail):
    s = _summary([f"theta[{i}]" for i in range(n)])
    with pytest.raises(KeyError) as info:
        s["sigma"]
    assert str(info.value).strip("'\"").endswith(tail)


def test_divergence_message_counts_and_percentage():
    s = _summary(["a"])
    diverging = np.zeros((2, 100), bool)
    diverging[0, :3] = True
    msg, = dg.problems(s, {"diverging": diverging}, num_chains=2, settings={"target_accept_prob": 0.8})
    assert msg.startswith("3 of 200 post-warmup transitions diverged (1.5%)") and "now 0.8" in msg
    msg, = dg.problems(s, {"diverging": diverging}, num_chains=2, settings={})
    assert "target_accept_prob" not in msg


def test_tree_depth_counts_transitions_at_the_limit():
    s = _summary(["a"])
    depth = np.full((1, 100), 5)
    depth[0, :2] = 10  # at the limit: 2% of transitions
    depth[0, 2:4] = 9  # below it: not counted
    msg, = dg.problems(s, {"tree_depth": depth}, num_chains=1, settings={"max_tree_depth": 10})
    assert msg.startswith("2 of 100 transitions hit the maximum tree depth 10")
    depth[0, 1] = 5  # 1%: not more than 1%, no message
    assert dg.problems(s, {"tree_depth": depth}, num_chains=1, settings={"max_tree_depth": 10}) == []


@pytest.mark.parametrize("n_bad, suffix", [(5, "p4 (1.060):"), (6, "p4 (1.060) and 1 more:")])
def test_rhat_listing_shows_five_worst_then_counts(n_bad, suffix):
    names = [f"p{i}" for i in range(n_bad)]
    s = _summary(names)
    s.values[:, -1] = 1.1 - 0.01 * np.arange(n_bad)  # p0 worst
    msg, = dg.problems(s, {}, num_chains=4, settings={})
    assert msg.startswith("R-hat > 1.01 for p0 (1.100), p1 (1.090)")
    assert suffix in msg
    assert dg.problems(s, {}, num_chains=1, settings={}) == []  # one chain: no R-hat verdict


def test_ess_messages_name_bulk_and_tail_remedies():
    s = _summary(["a", "b"], ess=1000.0)
    s.values[0, 5] = 150.0  # bulk below 4 x 100 ...
    s.values[1, 6] = 399.0  # ... and a tail below
    bulk, tail = dg.problems(s, {}, num_chains=4, settings={})
    assert bulk.startswith("bulk ESS < 400 (100 per chain) for a (150)") and "means and medians" in bulk
    assert tail.startswith("tail ESS < 400 (100 per chain) for b (399)") and "5% and 95% quantiles" in tail
    s.values[0, 5] = 400.0
    assert len(dg.problems(s, {}, num_chains=4, settings={})) == 1  # exactly at the threshold is fine
