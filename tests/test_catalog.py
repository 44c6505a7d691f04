"""The run listing of ``bayesgen runs``: a header row over aligned columns."""

from pathlib import Path

from bayesgen.catalog import RunInfo, format_runs

ROOT = Path("/runs")
INFOS = [
    RunInfo(ROOT / "lda", "lda", "lda K=20 batch on ap.dat", 10, "held-out perplexity", 3117.53, 1.8e9, ()),
    RunInfo(ROOT / "nested" / "demo", "vae", "vae categorical L=2 on digits", 77, "test log p(x) K=1000", -94.1552,
            1.8e9, ()),
    RunInfo(ROOT / "gmm", "gmm", "gmm K=5 full on digits", 26, "log-lik/row", -31.10536, 1.8e9, ()),
    RunInfo(ROOT / "broken", "unknown", "?", None, None, None, 0.0,
            ("no summary.json: the bayesgen fit that wrote it did not finish; rerun it with --force",)),
]
HEADER = ["RUN", "KIND", "MODEL", "EPOCHS/ITER", "METRIC", "VALUE", "MODIFIED"]


def test_the_listing_has_a_header_row_over_aligned_columns():
    lines = format_runs(INFOS, ROOT).splitlines()
    header, rows, notes = lines[0], lines[1:5], lines[5:]
    starts = [header.index(name) for name in HEADER]
    assert header.split() == HEADER and starts == sorted(starts)
    expected = [("lda", "lda", "lda K=20 batch on ap.dat", "10", "held-out perplexity", "3118"),
                ("nested/demo", "vae", "vae categorical L=2 on digits", "77", "test log p(x) K=1000", "-94.16"),
                ("gmm", "gmm", "gmm K=5 full on digits", "26", "log-lik/row", "-31.11"),
                ("broken", "unknown", "?", "-", "-", "-")]
    ends = [header.index(name) + len(name) for name in HEADER]
    for row, values in zip(rows, expected):
        # text columns start under their heading; the numbers end under theirs (right-aligned)
        for i in (0, 1, 2, 4):
            assert row[starts[i]:].startswith(values[i]) and (i == 0 or row[starts[i] - 1] == " "), (row, values[i])
        for i in (3, 5):
            assert row[:ends[i]].endswith(values[i]) and row[ends[i]] == " ", (row, values[i])
        assert row[starts[6]:] == "-" or row[starts[6]:starts[6] + 2] == "20"  # a date, or none
    assert notes == ["broken: no summary.json: the bayesgen fit that wrote it did not finish; rerun it with --force"]


def test_an_empty_listing_is_the_header_alone():
    assert format_runs([]).split() == HEADER
