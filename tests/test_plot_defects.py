"""Layout defects of the figures (issue of 2026-12-02): titles that overlap panels, tick labels
that run into each other, fractional iteration ticks, a title that said "0 decreases".

Each test draws the figure the public function builds (its writing is replaced by a capture),
then compares the rendered bounding boxes of its texts and panels.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import bayesgen.bayes.plots as bayes_plots
import bayesgen.plots as plots
from bayesgen.em.plots import plot_history, plot_topics


@pytest.fixture
def drawn(monkeypatch):
    """Figures the plot functions would have written, drawn, with their renderer."""
    figures = []

    def capture(fig, path):
        figures.append(fig)
        return Path(path)

    monkeypatch.setattr(plots, "_save", capture)
    monkeypatch.setattr(bayes_plots, "_save", capture)

    def draw(make):
        make()
        fig = figures.pop()
        fig.canvas.draw()
        return fig, fig.canvas.get_renderer()

    return draw


CLEARANCE = 4.0  # pixels (at 120 dpi) between two texts, about half a character: less reads as one word


def overlapping(boxes: dict) -> list[tuple[str, str]]:
    """The pairs of named bounding boxes closer than CLEARANCE (or sharing some area)."""
    padded = {name: box.padded(CLEARANCE / 2) for name, box in boxes.items()}
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(padded.items(), 2) if box_a.overlaps(box_b)]


def eight_schools_draws(chains: int = 2, n: int = 30) -> dict:
    """Draws of the 10 scalars of eight schools: mu, tau, theta[0..7]."""
    rng = np.random.default_rng(0)
    return {"mu": rng.normal(4, 3, (chains, n)), "tau": np.abs(rng.normal(0, 3, (chains, n))),
            "theta": rng.normal(4, 5, (chains, n, 8))}


@pytest.mark.parametrize("plot", [bayes_plots.trace_plot, bayes_plots.rank_plot, bayes_plots.pair_plot])
@pytest.mark.parametrize("sites", [("mu", "tau", "theta"), ("mu",)], ids=["10 scalars", "1 scalar"])
def test_mcmc_plot_titles_overlap_no_panel(drawn, plot, sites):
    draws = eight_schools_draws()
    fig, renderer = drawn(lambda: plot({name: draws[name] for name in sites}, "unused.png"))
    panels = [ax for ax in fig.axes if ax.get_visible()]
    title = fig.get_suptitle()
    assert title.startswith(("Trace", "Rank", "Pairs"))
    boxes = {"figure title": fig._suptitle.get_window_extent(renderer)}
    boxes.update({f"panel {i} ({ax.get_ylabel() or ax.get_title()})": ax.get_tightbbox(renderer)
                  for i, ax in enumerate(panels)})  # a panel's box holds its own title, labels and ticks
    assert overlapping(boxes) == []
    top = fig.bbox.y1
    assert boxes["figure title"].y1 <= top  # inside the figure too


def topic_model(n_topics: int = 20, vocab_size: int = 500):
    """Top word probabilities from 0.004 to 0.05, as in a real corpus (whose ticks were 0.0025, 0.0050, ...)."""
    rng = np.random.default_rng(1)
    beta = np.empty((n_topics, vocab_size))
    for t, largest in enumerate(np.geomspace(0.004, 0.05, n_topics)):
        top = np.linspace(largest, largest / 3, 10)
        beta[t] = np.concatenate([top, np.full(vocab_size - 10, (1 - top.sum()) / (vocab_size - 10))])
        beta[t] = beta[t][rng.permutation(vocab_size)]
    stems = ["market", "government", "internationalisation", "police", "earthquake", "i", "palestinian"]
    vocabulary = [f"{stems[i % len(stems)]}{i}" for i in range(vocab_size)]
    return SimpleNamespace(topic_word_=beta, vocabulary_=vocabulary)


def visible_tick_labels(ax, axis: str):
    """(position, Text) of the tick labels drawn inside the axis' view."""
    ticks = ax.get_xticks() if axis == "x" else ax.get_yticks()
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    return [(t, label) for t, label in zip(ticks, labels)
            if label.get_visible() and label.get_text() and low - 1e-9 <= t <= high + 1e-9]


def test_topic_words_and_ticks_do_not_collide(drawn):
    fig, renderer = drawn(lambda: plot_topics(topic_model(), "unused.png", n_words=10))
    boxes = {"figure title": fig._suptitle.get_window_extent(renderer)}
    for i, ax in enumerate(ax for ax in fig.axes if ax.get_visible()):
        boxes[f"topic {i} title"] = ax.title.get_window_extent(renderer)
        for axis in "xy":
            labels = visible_tick_labels(ax, axis)
            if axis == "y":
                assert len(labels) == 10  # every word is labelled
            for t, label in labels:
                boxes[f"topic {i} {axis} tick {label.get_text()}"] = label.get_window_extent(renderer)
    assert len(boxes) > 20 * 12
    assert overlapping(boxes) == []


@pytest.mark.parametrize("history", [[-3.0, -2.5, -2.4], [-3.0, -2.5], list(-1 / np.arange(1, 8)), [-1.0, -1.0]])
def test_history_ticks_are_whole_iterations(drawn, history):
    fig, _ = drawn(lambda: plot_history(history, "unused.png"))
    assert len(fig.axes) == 2
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert min(ticks) >= 1 and max(ticks) <= len(history)


@pytest.mark.parametrize("history,says", [
    ([-3.0, -2.5, -2.4], "never decreased"),
    ([-3.0, -2.5, -2.6, -2.4], "decreased once, by up to 0.1"),
    ([-3.0, -2.5, -2.6, -2.4, -2.5], "decreased 2 times, by up to 0.1"),
    ([-31.2, -31.1, -31.1000002], "dropped once by <= 2e-07: round-off"),  # float32 noise of EM sums
])
def test_history_title_says_whether_the_objective_decreased(drawn, history, says):
    fig, _ = drawn(lambda: plot_history(history, "unused.png"))
    title = fig.axes[1].get_title()
    assert says in title and "0 decreases" not in title
    decreases = [line for line in fig.axes[1].get_lines() if line.get_label() == "decrease (size)"]
    assert len(decreases) == (0 if says == "never decreased" else 1)  # the drops are drawn, in red


def test_history_with_no_change_says_so(drawn):
    fig, _ = drawn(lambda: plot_history([-1.0, -1.0], "unused.png"))
    assert [t.get_text() for t in fig.axes[1].texts] == ["no change between iterations"]
