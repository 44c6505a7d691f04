"""Experiment tracking against a real local MLflow store and real TensorBoard event files
(each skipped when its optional package is not installed: pip install 'bayesgen[track]')."""

import json
import struct
import sys

import numpy as np
import pytest

from bayesgen.cli import main


def test_missing_tracker_package_is_one_line_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    code = main(["train", "--out", str(tmp_path / "run"), "--track", "mlflow", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "needs the mlflow package" in err and "bayesgen[track]" in err
    assert not (tmp_path / "run" / "config.json").exists()


def test_mlflow_live_training_and_a_fit_in_one_local_store(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow import MlflowClient

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # nothing may land in the working directory: checked below

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"  # one store shared by several runs
    run = tmp_path / "vae"
    assert main(["train", "--out", str(run), "--data", "digits", "--likelihood", "categorical", "--hidden", "16",
                 "--epochs", "2", "--n-importance", "4", "--no-plots", "--quiet", "--track", "mlflow",
                 "--track-uri", store]) == 0
    np.savetxt(tmp_path / "points.csv", np.random.default_rng(0).normal(size=(30, 3)), delimiter=",")
    assert main(["fit", "ppca", "--data", str(tmp_path / "points.csv"), "-k", "1", "--out", str(tmp_path / "ppca"),
                 "--track", "mlflow", "--track-uri", store]) == 0
    capsys.readouterr()

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("bayesgen")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"vae", "ppca"} and all(r.info.status == "FINISHED" for r in runs.values())

    vae = runs["vae"]
    saved = json.loads((run / "config.json").read_text())
    assert vae.data.params["model.latent_dim"] == "2" and vae.data.params["model.hidden"] == "16"
    assert vae.data.params["data.binarize"] == saved["config"]["data"]["binarize"] == "none"  # resolved, not 'auto'
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = client.get_metric_history(vae.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(logged, key=lambda m: m.step)] == \
        [(r["epoch"], pytest.approx(r["train_loss"])) for r in history]
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert vae.data.metrics["test_log_px"] == pytest.approx(evaluation["log_px"])
    artifacts = {a.path for a in client.list_artifacts(vae.info.run_id)}
    assert {"config.json", "metrics.jsonl", "evaluation.json", "checkpoints"} <= artifacts
    assert [a.path for a in client.list_artifacts(vae.info.run_id, "checkpoints")] == ["checkpoints/best.ckpt"]

    assert not list((tmp_path / "cwd").iterdir())  # the artefacts went beside the database
    assert (tmp_path / "mlflow-artifacts").is_dir()
    ppca = runs["ppca"]
    summary = json.loads((tmp_path / "ppca" / "summary.json").read_text())
    assert ppca.data.params["bayesgen.kind"] == "ppca"
    assert ppca.data.metrics["log_likelihood"] == pytest.approx(summary["log_likelihood"])
    assert "summary.json" in {a.path for a in client.list_artifacts(ppca.info.run_id)}


def _events(folder):
    """Every Event in the TFRecord files of a TensorBoard log folder (length, crc, data, crc)."""
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            events.append(event_pb2.Event.FromString(data[at + 12:at + 12 + length]))
            at += 12 + length + 4
    return events


def test_tensorboard_after_the_fact(tiny_run, tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    run, _ = tiny_run
    assert main(["track", str(run), "--to", "tensorboard", "--uri", str(tmp_path / "tb")]) == 0
    assert "logged" in capsys.readouterr().out
    values = [(e.step, v) for e in _events(tmp_path / "tb") for v in e.summary.value]
    losses = sorted((step, v.simple_value) for step, v in values if v.tag == "train_loss")
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses == [(r["epoch"], pytest.approx(r["train_loss"], rel=1e-6)) for r in history]
    evaluation = json.loads((run / "evaluation.json").read_text())  # other tests may re-evaluate the shared run
    assert ([v.simple_value for _, v in values if v.tag == "test_log_px"]
            == [pytest.approx(evaluation["log_px"], rel=1e-6)])
    images = {v.tag for _, v in values if v.HasField("image")}
    assert "plots/samples" in images and "plots/loss" in images
