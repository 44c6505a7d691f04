"""The command line: every command on a tiny run, and one clear line + exit 2 for bad input."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bayesgen.cli import main

TINY_TRAIN = ["--data", "digits", "--likelihood", "categorical", "--latent-dim", "2", "--hidden", "32",
              "--epochs", "2", "--n-importance", "8", "--no-plots", "--quiet"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert pytest.importorskip("re").search(pattern, lines[0]), lines[0]


def test_every_command_on_a_run(tiny_run, capsys, tmp_path):
    run, _ = tiny_run
    code, out, _ = run_cli(capsys, "evaluate", run, "-K", 8, "--quiet")
    assert code == 0 and "log p(x), K=8" in out and "bits/dim" in out
    code, out, _ = run_cli(capsys, "sample", run, "--n", 9, "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    code, _, _ = run_cli(capsys, "sample", run, "--n", 5, "--draw", "--out", tmp_path / "s.npy")
    draws = np.load(tmp_path / "s.npy")
    assert code == 0 and draws.shape == (5, 64) and np.all(draws == np.round(draws)) and draws.max() <= 16
    assert run_cli(capsys, "reconstruct", run, "--n", 4, "--out", tmp_path / "r.png")[0] == 0
    code, _, _ = run_cli(capsys, "encode", run, "--out", tmp_path / "codes.csv")
    codes = np.loadtxt(tmp_path / "codes.csv", delimiter=",", skiprows=1)
    assert code == 0 and codes.shape[1] == 4 and np.all(codes[:, 2:] > 0)  # means, then positive stds
    assert run_cli(capsys, "encode", run, "--split", "valid", "--out", tmp_path / "codes.npy")[0] == 0
    assert np.load(tmp_path / "codes.npy").shape[1] == 4
    assert run_cli(capsys, "interpolate", run, "--from", 2, "--to", 5, "--steps", 6,
                   "--out", tmp_path / "i.png")[0] == 0
    code, out, _ = run_cli(capsys, "plot", run)
    assert code == 0 and "manifold.png" in out
    code, out, _ = run_cli(capsys, "anomaly", run, "-K", 8, "--out", tmp_path / "scores.csv", "--quiet")
    scores = np.loadtxt(tmp_path / "scores.csv", delimiter=",", skiprows=1)
    assert code == 0 and np.all(scores[:, 1] > 0) and (tmp_path / "scores.png").is_file()


def test_evaluate_by_annealed_importance_sampling_with_its_bracket_in_the_table_and_report(tiny_run, capsys,
                                                                                           tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)  # evaluate writes evaluation.json: a copy, not the shared run
    code, out, err = run_cli(capsys, "evaluate", run, "-K", 8, "--ais", 3, "--ais-chains", 2, "--bdmc", 2, "--quiet")
    assert code == 0, err
    assert "log p(x), AIS 3 steps x 2 chains" in out and "importance sampled, K=8" in out and "BDMC bracket" in out
    saved = json.loads((run / "evaluation.json").read_text())
    assert saved["method"] == "ais" and saved["ais_steps"] == 3 and saved["bdmc_lower"] <= saved["bdmc_upper"] + 5
    assert run_cli(capsys, "report", run, "--out", tmp_path / "report.html", "--no-draw")[0] == 0
    html = (tmp_path / "report.html").read_text()
    assert "AIS steps" in html and "BDMC upper" in html and "importance sampled" in html
    assert_one_line_error(*run_cli(capsys, "evaluate", run, "--ais", 0)[::2], "n_steps must be an integer >= 1, "
                                                                               "got --ais 0$")
    assert_one_line_error(*run_cli(capsys, "evaluate", run, "--bdmc", 3)[::2],
                          "the BDMC bracket runs AIS both ways: pass --ais 1000 .AIS steps. with --bdmc 3$")


def test_anomaly_on_new_data_scores_noise_higher(tiny_run, capsys, tmp_path):
    run, _ = tiny_run
    from bayesgen.data import load_digits

    digits = load_digits().x[:20]
    noise = np.random.default_rng(0).integers(0, 17, (20, 64))
    np.save(tmp_path / "mixed.npy", np.concatenate([digits, noise]).astype(np.float32))
    code, _, err = run_cli(capsys, "anomaly", run, "--data", tmp_path / "mixed.npy", "-K", 8,
                           "--out", tmp_path / "s.csv", "--quiet")
    assert code == 0, err
    scores = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)[:, 1]
    assert scores[20:].min() > scores[:20].max()  # uniform noise is far less likely than digits
    np.save(tmp_path / "wide.npy", np.zeros((3, 10), np.float32))
    assert_one_line_error(*run_cli(capsys, "anomaly", run, "--data", tmp_path / "wide.npy")[::2],
                          "has 10 features but the model was trained on 64")


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "pixels.npy", np.full((50, 16), 255.0, np.float32))
    nan = np.random.default_rng(0).random((50, 16)).astype(np.float32)
    nan[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "flat.npy", np.zeros(16, np.float32))
    np.save(tmp_path / "empty.npy", np.zeros((0, 16), np.float32))
    (tmp_path / "bad.toml").write_text("[model\nlatent_dim = 2")
    (tmp_path / "unknown.toml").write_text("[model]\nlatent_dimension = 2\n")
    return tmp_path


@pytest.mark.parametrize("argv, pattern", [
    (["--latent-dim", "0"], "latent_dim must be at least 1, got 0; pass e.g. --latent-dim 2$"),
    (["--n-importance", "0"], "importance samples K must be at least 1"),
    (["--lr", "-0.1"], "learning rate must be a positive number, got -0.1; pass e.g. --lr 1e-3$"),
    (["--samples", "0"], "samples per example .K. must be at least 1"),
    (["--n-components", "5"], "n_components is an option of hvae, ladder-vae, mog-vae, not of the vae model"),
    (["--model", "mog-vae", "--n-components", "0"], "n_components must be a whole number >= 1, got 0$"),
    (["--model", "hvae", "--top-prior", "vamp"], "unknown top_prior 'vamp'; choose one of normal, mog$"),
    (["--epochs", "zero"], "invalid int value: 'zero'"),
    (["--data", "imagenet"], "imagenet"),
    (["--likelihood", "poisson"], "unknown likelihood 'poisson'"),
    (["--model", "gan"], "unknown model 'gan'; available: vae"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--data", "{d}/pixels.npy", "--likelihood", "bernoulli", "--no-scale", "--binarize", "none",
      "--batch-size", "8"],
     r"bernoulli likelihood needs data in \{0, 1\}, got values in \[255, 255\]; use --binarize static or "
     r"--binarize dynamic, or --likelihood gaussian or --likelihood categorical$"),
    (["--data", "{d}/nan.npy", "--likelihood", "gaussian"], "NaN"),
    (["--data", "{d}/flat.npy"], "2-D"),
    (["--data", "{d}/empty.npy"], "no rows|empty"),
    (["--data", "{d}/missing.npy"], "missing.npy"),
    (["--config", "{d}/bad.toml"], "not valid TOML"),
    (["--config", "{d}/unknown.toml"], r"unknown key.*latent_dimension.*did you mean latent_dimension -> latent_dim\?"),
    (["--config", "{d}"], "is a directory; pass the TOML file itself"),
    (["--batch-size", "100000"], r"larger than the .* training examples; pass --batch-size \d+ or less$"),
    (["--data", "{d}/pixels.npy", "--no-scale", "--batch-size", "8"], r"dynamic binarization needs .* in \[0, 1\]"),
])
def test_train_bad_input_is_one_line_exit_2(argv, pattern, files, capsys):
    argv = [a.format(d=files) for a in argv]
    code, _, err = run_cli(capsys, "train", "--out", files / "run", "--quiet", *argv)
    assert_one_line_error(code, err, pattern)
    assert not (files / "run" / "metrics.jsonl").exists()


def test_bad_run_directories(tiny_run, capsys, tmp_path):
    assert_one_line_error(*run_cli(capsys, "evaluate", tmp_path / "nope")[::2], "does not exist")
    (tmp_path / "a_file").write_text("x")
    assert_one_line_error(*run_cli(capsys, "evaluate", tmp_path / "a_file")[::2], "is a file, not a run directory")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(*run_cli(capsys, "sample", tmp_path / "empty")[::2], "not a run directory")
    run, _ = tiny_run
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    ckpt = copy / "checkpoints" / "best.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert_one_line_error(*run_cli(capsys, "evaluate", copy)[::2], "corrupt or not a bayesgen checkpoint")
    ckpt.unlink()
    assert_one_line_error(*run_cli(capsys, "evaluate", copy)[::2], "does not exist")
    assert_one_line_error(*run_cli(capsys, "evaluate", run, "-K", "0")[::2], "importance samples K must be")
    assert_one_line_error(*run_cli(capsys, "interpolate", run, "--from", "100000")[::2], "out of range")
    assert_one_line_error(*run_cli(capsys, "encode", run, "--out", tmp_path / "codes.txt")[::2], "use a .npy or .csv")


def test_help_has_an_example_for_every_command(capsys):
    from bayesgen.cli import command_examples

    examples = command_examples()
    assert {"train", "demo", "evaluate", "sample", "fit", "report", "bayes", "completion"} <= set(examples)
    for command in examples:
        assert main([command, "--help"]) == 0
        assert "example:" in capsys.readouterr().out


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bayesgen", "train", "--out", str(tmp_path / "r"),
                           "--latent-dim", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert "latent_dim must be at least 1" in proc.stderr


def test_library_options_are_translated_into_flags():
    from bayesgen.cli import build_parser, in_flags

    parser = build_parser()
    assert in_flags("no analytic KL; use kl='mc'", parser, "train") == "no analytic KL; use --kl mc"
    assert in_flags("lower it (e.g. learning_rate=0.0001)", parser, "train") == "lower it (e.g. --lr 0.0001)"
    assert in_flags("pass scale=False and likelihood='gaussian'", parser, "train") == \
        "pass --no-scale and --likelihood gaussian"
    assert in_flags("pass force=True to replace it", parser, "train") == "pass --force to replace it"
    assert in_flags("pass e.g. hidden=256,128", parser, "train") == "pass e.g. --hidden 256,128"
    assert in_flags("a class, e.g. condition=3", parser, "sample") == "a class, e.g. --condition 3"
    # names that are no flag, and text that only looks like an option, stay as written
    assert in_flags("got x=3 and mean=0.5", parser, "train") == "got x=3 and mean=0.5"



def test_help_and_the_parser_import_neither_jax_nor_plotting():
    """``bayesgen --help`` answers at once (0.3 s, not 2.7 s): the parser is built from modules
    that import JAX, NumPyro, matplotlib and scikit-learn only inside the commands that run them."""
    probe = ("import sys, bayesgen, bayesgen.cli\n"
             "bayesgen.cli.build_parser()\n"
             "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'numpyro', 'matplotlib', 'sklearn', "
             "'equinox', 'optax', 'arviz'})\n"
             "print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr


def test_the_compilation_cache_goes_to_the_user_cache_unless_told_otherwise(tmp_path, monkeypatch):
    from bayesgen.cli.common import use_compilation_cache

    for name in ("JAX_COMPILATION_CACHE_DIR", "BAYESGEN_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                 "JAX_COMPILATION_CACHE_MAX_SIZE"):  # set, then removed: monkeypatch restores what was there
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    use_compilation_cache()
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "cache" / "bayesgen" / "jax")
    assert (tmp_path / "cache" / "bayesgen" / "jax").is_dir()
    assert os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] == str(2**30)  # bounded in its own folder only

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BAYESGEN_CACHE_DIR", str(tmp_path / "file" / "jax"))  # cannot be made: no cache, no error
    use_compilation_cache()
    assert "JAX_COMPILATION_CACHE_DIR" not in os.environ

    monkeypatch.delenv("JAX_COMPILATION_CACHE_MAX_SIZE")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))  # the user's own setting wins
    use_compilation_cache()
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "mine")
    assert "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ  # JAX's eviction fails on others' entries


@pytest.mark.filterwarnings("default")  # as outside pytest, whose configuration makes warnings errors
def test_warnings_are_one_line_of_the_commands_output(tiny_run, monkeypatch, capsys):
    import warnings

    import bayesgen.cli.use_commands as use_commands
    from bayesgen import BayesgenError

    def warns(*args, **kwargs):
        np.log(np.zeros(1))  # NumPy's RuntimeWarning, as a computation on odd data would raise it
        warnings.warn("a library's\n  two-line warning", UserWarning, stacklevel=1)
        raise BayesgenError("stop here")

    monkeypatch.setattr(use_commands, "open_run", warns)
    run, _ = tiny_run
    assert main(["sample", str(run), "--out", str(run / "unused.png")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["bayesgen sample: warning: divide by zero encountered in log",
                   "bayesgen sample: warning: a library's two-line warning",
                   "bayesgen sample: error: stop here"], err
