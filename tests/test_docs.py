"""The documentation site builds without a single warning (skipped without the 'docs' extra)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="pip install '.[docs]' to build the site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={"NO_MKDOCS_2_WARNING": "1",
                                                                                       "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" not in proc.stderr
    tutorial = (tmp_path / "site" / "tutorials" / "03_iwae_bounds" / "index.html").read_text()
    assert "IWAE and the tightness of bounds" in tutorial and "objective_per_example" in tutorial
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "build_vae" in api and "write_report" in api
