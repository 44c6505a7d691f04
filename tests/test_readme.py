"""The README's "Python API at a glance" runs exactly as written (its settings are already tiny)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).parents[1] / "README.md"


def api_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("## The Python API at a glance", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_api_at_a_glance_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = api_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)  # in case an example writes files
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    table = namespace["table"]
    # a sanity bound only: the spread over examples (log_px_stderr) is far wider than Monte Carlo error;
    # ELBO <= log p(x) within Monte Carlo error is checked per model in test_lvm_variants.py
    assert np.isfinite(table["elbo"]) and table["elbo"] <= table["log_px"] + 3 * table["log_px_stderr"]
    assert "test ELBO" in capsys.readouterr().out
    assert namespace["z_mean"].shape == (297, 2) and namespace["images"].shape == (16, 64)
    assert namespace["clusters"].shape == (1797,) and len(np.unique(namespace["clusters"])) > 1


def test_quickstart_is_the_two_commands():
    quickstart = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quickstart, flags=re.S)
    assert commands == [
        'python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/bayesgen demo',
        'python3 -m venv .venv && .venv/bin/pip install -q ".[test]" && .venv/bin/ruff check . '
        '&& .venv/bin/python -m pytest -x -q -n 2 --dist loadfile',
    ]
