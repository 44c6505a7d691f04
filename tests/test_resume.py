"""Crash safety: exact resume after SIGKILL, clean stop on SIGTERM / Ctrl-C, checkpoint integrity.

The training processes run in subprocesses through the real CLI and are killed from outside
while they train; the reference is one uninterrupted run with the same seed. metrics.jsonl
holds no wall-clock fields (epoch, step, losses and terms only), so byte equality is the
honest comparison.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import tiny_config

import bayesgen
from bayesgen import BayesgenError, TrainingInterrupted
from bayesgen.cli import main
from bayesgen.lvm.presets import build_vae
from bayesgen.runs import train
from bayesgen.train import checkpoint
from bayesgen.train.driver import FitProgress, fit
from bayesgen.train.signals import graceful_stop

EPOCHS, BATCH = 16, 32
FLAGS = ["--data", "digits", "--likelihood", "categorical", "--latent-dim", "2", "--hidden", "32",
         "--epochs", str(EPOCHS),
         "--batch-size", str(BATCH), "--lr", "3e-3", "--seed", "0", "--n-importance", "16", "--no-plots", "--quiet"]
SRC = str(Path(bayesgen.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run with the settings of FLAGS."""
    path = tmp_path_factory.mktemp("reference") / "run"
    train(tiny_config(train={"epochs": EPOCHS, "batch_size": BATCH}), path, progress=False, make_plots=False)
    return path


def start_training(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "bayesgen", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epoch(proc: subprocess.Popen, out: Path, after: int) -> None:
    """Return once last.ckpt holds an epoch beyond ``after``, i.e. while later epochs train."""
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no new checkpoint in time"
        try:
            if checkpoint.read_metadata(last)["epoch"] > after:
                return
        except BayesgenError:  # not written yet
            pass
        time.sleep(0.005)


def test_sigterm_then_sigkill_mid_training_then_resume_is_bit_identical(reference, tmp_path, capsys):
    epochs = len((reference / "metrics.jsonl").read_text().splitlines())
    out = tmp_path / "run"
    # 1. SIGTERM: the running epoch finishes and is saved; one line; exit 128 + 15
    proc = start_training(["--out", str(out), *FLAGS])
    wait_for_epoch(proc, out, 0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and f"continue with: bayesgen train --resume {out}" in err.splitlines()[-1]
    stopped = checkpoint.read_metadata(out / "checkpoints" / "last.ckpt")["epoch"]
    assert stopped == len((out / "metrics.jsonl").read_text().splitlines()) < epochs
    # a kill while the next epoch's line is written leaves half a line behind: resume cuts it off
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"epoch": %d, "step": 1' % (stopped + 1))
    # 2. resume through the CLI, then SIGKILL it once it has gone further (no chance to clean up)
    proc = start_training(["--resume", str(out), "--quiet", "--no-plots"])
    wait_for_epoch(proc, out, stopped)
    proc.kill()
    proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "evaluation.json").exists()  # it died during training
    # 3. resume to the end: the same bytes as the run that was never interrupted
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert (out / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    assert json.loads((out / "evaluation.json").read_text()) == json.loads((reference / "evaluation.json").read_text())
    capsys.readouterr()


def test_resume_refuses_changed_data_edited_metrics_and_other_flags(reference, tmp_path, capsys):
    def copy(name):
        shutil.copytree(reference, tmp_path / name)
        return tmp_path / name

    run = copy("fingerprint")
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "fingerprint": "0" * 64}))
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "changed since" in capsys.readouterr().err
    run = copy("metrics")
    (run / "metrics.jsonl").write_text("")
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "holds 0 complete epochs but the last checkpoint is at epoch" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--lr", "0.1"]) == 2
    assert "--lr cannot be changed" in capsys.readouterr().err
    assert main(["train", "--quiet"]) == 2
    assert "needs --out DIR" in capsys.readouterr().err


def test_a_finished_run_extends_to_more_epochs_as_if_asked_from_the_start(reference, tmp_path, capsys):
    run = tmp_path / "short"
    train(tiny_config(train={"epochs": 3, "batch_size": BATCH}), run, progress=False, make_plots=False)
    assert main(["train", "--resume", str(run), "--epochs", "5", "--quiet", "--no-plots"]) == 0
    capsys.readouterr()
    # epochs 1-5 byte for byte those of the run asked for 16 epochs from the start (constant learning rate)
    assert (run / "metrics.jsonl").read_bytes().splitlines()[:5] == (reference / "metrics.jsonl").read_bytes(
        ).splitlines()[:5] and len((run / "metrics.jsonl").read_bytes().splitlines()) == 5
    assert json.loads((run / "config.json").read_text())["config"]["train"]["epochs"] == 5
    assert main(["train", "--resume", str(run), "--epochs", "4"]) == 2
    assert "has trained 5 epochs already; pass --epochs 5 or more" in capsys.readouterr().err
    cosine = tmp_path / "cosine"
    train(tiny_config(train={"epochs": 1, "batch_size": 256, "lr_schedule": "cosine"}), cosine, progress=False,
          make_plots=False)
    assert main(["train", "--resume", str(cosine), "--epochs", "2"]) == 2
    assert "decays its learning rate (cosine) over its 1 epochs" in capsys.readouterr().err


# --- Ctrl-C inside one process ---------------------------------------------------------------

def test_ctrl_c_stops_after_the_epoch_and_a_second_one_aborts(getkey):
    x = np.asarray(jax.random.normal(getkey(), (64, 6)), np.float32)
    model = build_vae(data_dim=6, latent_dim=2, likelihood="gaussian", hidden=(8,), key=getkey())
    previous = signal.getsignal(signal.SIGINT)

    def ctrl_c_in_epoch_2(record, *_):
        if record["epoch"] == 2:
            signal.raise_signal(signal.SIGINT)

    with graceful_stop() as stop:
        result = fit(model, x, key=getkey(), epochs=10, batch_size=16, on_epoch=ctrl_c_in_epoch_2, should_stop=stop,
                     progress=False)
    assert result.stop_reason == "interrupted" and len(result.history) == 2 and stop.signum == signal.SIGINT
    # resuming a finished fit trains nothing more
    done = FitProgress(result.state, 10, 0.0, 2, result.state.params)
    assert fit(model, x, key=getkey(), epochs=10, batch_size=16, resume=done, progress=False).history == []
    with pytest.raises(TrainingInterrupted, match="second SIGINT"), graceful_stop():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous  # handlers restored


def test_cli_exit_code_is_128_plus_the_signal(monkeypatch, capsys):
    import bayesgen.cli.train_commands as train_commands

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted("stopped by SIGINT after epoch 1 of 3; continue with: bayesgen train --resume r",
                                  signal.SIGINT)

    monkeypatch.setattr(train_commands, "train", interrupted)
    assert main(["train", "--out", "r", "--quiet"]) == 130
    assert capsys.readouterr().err.strip().endswith("--resume r")


# --- integrity --------------------------------------------------------------------------------

def test_incompatible_truncated_and_foreign_checkpoints_are_one_line_errors(reference, tmp_path, capsys):
    def check(run, command, pattern):
        code = main([command, str(run), "--quiet"] if command != "resume"
                    else ["train", "--resume", str(run), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert pattern in err, err

    wide = tmp_path / "latent3"  # the same run directory, but config.json now says latent_dim 3
    shutil.copytree(reference, wide)
    saved = json.loads((wide / "config.json").read_text())
    saved["config"]["model"]["latent_dim"] = 3
    (wide / "config.json").write_text(json.dumps(saved))
    check(wide, "evaluate", "belongs to a different model configuration")
    check(wide, "resume", "belongs to a different model configuration")

    cut = tmp_path / "truncated"
    shutil.copytree(reference, cut)
    for name in ("best.ckpt", "last.ckpt"):
        data = (cut / "checkpoints" / name).read_bytes()
        (cut / "checkpoints" / name).write_bytes(data[: len(data) - 100])
    check(cut, "evaluate", "is corrupt or not a bayesgen checkpoint")
    check(cut, "resume", "is corrupt or not a bayesgen checkpoint")

    foreign = tmp_path / "foreign"  # a valid checkpoint of another run with the same shapes
    shutil.copytree(reference, foreign)
    meta = checkpoint.read_metadata(reference / "checkpoints" / "best.ckpt")
    meta["config"]["model"]["activation"] = "tanh"
    model, _ = checkpoint.load_checkpoint(reference / "checkpoints" / "best.ckpt",
                                          bayesgen.open_run(reference).model)
    checkpoint.save_checkpoint(foreign / "checkpoints" / "best.ckpt", model,
                               metadata={k: v for k, v in meta.items() if k not in ("format", "n_leaves", "sha256")})
    check(foreign, "evaluate", "was written for a different model configuration")


def test_loading_never_unpickles(tmp_path):
    """An array of Python objects in a checkpoint would run code when unpickled; it is refused."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    model = build_vae(data_dim=6, latent_dim=2, likelihood="bernoulli", hidden=(8,), key=jax.random.key(0))
    path = tmp_path / "c.ckpt"
    checkpoint.save_checkpoint(path, model)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["leaf_00000"] = np.array([Payload()], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(BayesgenError, match="corrupt or not a bayesgen checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "evil.npz", model)
    assert not marker.exists()
