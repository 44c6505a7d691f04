"""Every tutorial in docs/tutorials runs, with its own checks, in its tiny setting (as CI does)."""

import runpy
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parents[1] / "docs" / "tutorials").glob("[0-9]*.py"))


def test_tutorials_are_found():
    assert len(TUTORIALS) >= 5


@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BAYESGEN_TUTORIAL_TINY", "1")
    monkeypatch.setenv("BAYESGEN_TUTORIAL_OUT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip()  # it tells the reader what happened
    doc = script.read_text().split('"""')[1]
    assert doc.lstrip().startswith("# ") and "Run it:" in doc  # a markdown explanation on top
