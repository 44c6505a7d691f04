"""The run directory: its manifest, and runs written before the manifest still open.

``tests/fixtures/format1_mog_vae`` was written by bayesgen at commit 9d7e0fa (before run.json,
when config.json's model section held every variant's options side by side)::

    train(Config.from_dict({"data": {"source": "digits"},
                            "model": {"name": "mog-vae", "latent_dim": 2, "hidden": [8], "n_components": 3},
                            "train": {"epochs": 2, "batch_size": 128, "learning_rate": 3e-3, "seed": 0},
                            "eval": {"n_importance": 16}}), RUN, make_plots=False)
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bayesgen import layout
from bayesgen._errors import BayesgenError
from bayesgen.catalog import inspect_run
from bayesgen.runs import evaluate_run, open_run, read_config, resume

FORMAT1 = Path(__file__).parent / "fixtures" / "format1_mog_vae"


@pytest.fixture
def old_run(tmp_path):
    run = tmp_path / "old"
    shutil.copytree(FORMAT1, run)
    return run


def test_a_run_written_before_the_manifest_opens_and_scores_as_it_did(old_run):
    assert layout.read_manifest(old_run) == {"kind": "vae", "format": 1}
    config, _ = read_config(old_run)
    assert config.model.name == "mog-vae" and config.model.options.n_components == 3
    assert "n_pseudo" not in config.to_dict()["model"]["options"]  # the other variants' options are dropped
    run = open_run(old_run)
    assert type(run.model.prior).__name__ == "MixtureOfGaussians" and run.model.prior.means.shape == (3, 2)
    # the same numbers as the old code wrote (tolerance: another processor's float32 rounding)
    recorded = json.loads((old_run / layout.EVALUATION).read_text())
    again = evaluate_run(run, write=False)
    assert again.keys() == recorded.keys()
    for key, value in recorded.items():
        if isinstance(value, float):
            np.testing.assert_allclose(again[key], value, rtol=1e-4, err_msg=key)
        else:
            assert again[key] == value, key
    info = inspect_run(old_run)
    assert (info.kind, info.model, info.iterations) == ("vae", "mog-vae bernoulli L=2 on digits", 2)


def test_a_finished_run_written_before_the_manifest_resumes(old_run):
    # its checkpoints' metadata hold the old config: they still belong to the run
    metrics = (old_run / layout.METRICS).read_bytes()
    result = resume(old_run, progress=False, make_plots=False)
    assert result["n_importance"] == 16 and (old_run / layout.METRICS).read_bytes() == metrics


def test_a_new_run_names_its_kind_and_format(tiny_run):
    tiny_run, _ = tiny_run
    assert layout.read_manifest(tiny_run) == {"kind": "vae", "format": layout.FORMAT}
    saved = json.loads((tiny_run / layout.CONFIG).read_text())
    assert saved["config"]["model"]["options"] == {}  # the plain vae has no options


@pytest.mark.parametrize("summary, kind", [
    ({"model": "gmm", "n_components": 3}, "gmm"),
    ({"model": "ppca"}, "ppca"),
    ({"model": "eight_schools", "draws_per_chain": 100}, "bayes"),
    ({"n_topics": 5}, "lda"),  # LDA's summary had no model key
    ({"something": 1}, "unknown"),
])
def test_the_kind_of_an_old_fit_run_is_read_from_its_summary(tmp_path, summary, kind):
    (tmp_path / layout.SUMMARY).write_text(json.dumps(summary))
    assert layout.read_manifest(tmp_path) == {"kind": kind, "format": 1}
    layout.write_manifest(tmp_path, "prodlda")  # a manifest wins over the guess
    assert layout.read_manifest(tmp_path) == {"kind": "prodlda", "format": layout.FORMAT}


def test_manifests_only_name_known_kinds(tmp_path):
    with pytest.raises(BayesgenError, match="unknown run kind 'vea'"):
        layout.write_manifest(tmp_path, "vea")
    assert layout.read_manifest(tmp_path) is None and not layout.is_run(tmp_path)
    (tmp_path / layout.MANIFEST).write_text('{"kind": "vea", "format": 2}')  # not ours: no kind is guessed
    assert layout.read_manifest(tmp_path) is None


def test_json_is_strict_and_flags_what_was_not_a_number():
    import json
    import math

    import numpy as np

    record = {"epoch": 3, "loss": 1.5, "kl": math.nan, "rhat": [1.0, np.float32(np.inf)], "n": np.int64(7),
              "ok": np.bool_(True), "nested": {"x": -math.inf}}
    text = layout.json_text(record, indent=None)
    parsed = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # no NaN/Infinity
    assert parsed == {"epoch": 3, "loss": 1.5, "kl": None, "rhat": [1.0, None], "n": 7, "ok": True,
                      "nested": {"x": None}, "non_finite": ["kl", "rhat[1]", "nested.x"]}
    finite = {"a": 1.25, "b": [1, 2.5e-8], "c": "text", "d": None}
    assert layout.json_text(finite) == json.dumps(finite, indent=2)  # unchanged where nothing was non-finite
