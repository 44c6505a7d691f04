"""Operating-system faults: every command that writes, pointed at a destination it cannot write
or meeting a full disk, says so in one line with exit code 4 (no traceback), refuses before its
work where the destination is known to be bad, and loses nothing that existed before.

Tests run as any user (CI may be root, for whom permission bits do not stop a write), so the
unwritable destination is a path *through a regular file* (ENOTDIR for everyone), and the full
disk is ENOSPC injected where every atomic write syncs its temporary file (``os.fsync``).
"""

import errno
import os
import shutil

import pytest

from bayesgen import layout
from bayesgen.cli import main

TRAIN = ["--data", "digits", "--likelihood", "categorical", "--latent-dim", "2", "--hidden", "8", "--epochs", "1",
         "--n-importance", "4", "--no-plots", "--quiet"]
EXIT_OS_ERROR = 4

# every command that writes, with {bad} standing for a destination it cannot write
COMMANDS = {
    "train": ["train", *TRAIN, "--out", "{bad}/run"],
    "demo": ["demo", "--epochs", "1", "--out", "{bad}/demo", "--quiet"],
    "sample": ["sample", "{run}", "--out", "{bad}/s.png"],
    "sample-npy": ["sample", "{run}", "--out", "{bad}/s.npy"],
    "reconstruct": ["reconstruct", "{run}", "--out", "{bad}/r.png"],
    "encode": ["encode", "{run}", "--out", "{bad}/c.csv"],
    "interpolate": ["interpolate", "{run}", "--out", "{bad}/i.png"],
    "anomaly": ["anomaly", "{run}", "-K", "4", "--out", "{bad}/a.csv", "--quiet"],
    "rate-distortion": ["plot", "--rate-distortion", "{run}", "--out", "{bad}/rd.png"],
    "report": ["report", "{run}", "--out", "{bad}/r.html"],
    "fit": ["fit", "gmm", "--data", "{csv}", "-k", "2", "--out", "{bad}/gmm", "--quiet"],
    "bayes": ["bayes", "fit", "eight-schools", "--data", "{schools}", "--out", "{bad}/b", "--quiet"],
}


@pytest.fixture
def places(tmp_path, tiny_run):
    (tmp_path / "points.csv").write_text("a,b\n" + "".join(f"{i % 7},{i % 3}\n" for i in range(40)))
    (tmp_path / "schools.csv").write_text("y,sigma\n28,15\n8,10\n-3,16\n7,11\n-1,9\n1,11\n18,10\n12,18\n")
    (tmp_path / "afile").write_text("not a folder")
    return {"run": str(tiny_run[0]), "csv": str(tmp_path / "points.csv"), "schools": str(tmp_path / "schools.csv"),
            "bad": str(tmp_path / "afile")}


def _fill(argv, places):
    return [arg.format(**places) for arg in argv]


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_one_os_line(code, err, pattern):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == EXIT_OS_ERROR and len(lines) == 1 and "Traceback" not in err, (code, err)
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize("name", COMMANDS)
def test_an_unwritable_destination_is_one_line_before_any_work(name, places, capsys, monkeypatch):
    import bayesgen.bayes.cli_bayes as cli_bayes
    import bayesgen.cli.use_commands as use_commands
    import bayesgen.em.cli_gmm as cli_gmm
    import bayesgen.runs.training as training

    def no_work(*args, **kwargs):
        raise AssertionError("the command started its work before checking where it writes")

    # where each command starts its work: opening the run, reading the data
    for module, start in ((use_commands, "open_run"), (training, "prepare_data"), (cli_gmm, "load_data"),
                          (cli_bayes, "_model_and_data")):
        monkeypatch.setattr(module, start, no_work)
    code = main(_fill(COMMANDS[name], places))
    _assert_one_os_line(code, capsys.readouterr().err, "a part of the path is a file, not a directory")


@pytest.mark.parametrize("name", ["evaluate", "plot", "report", "encode", "sample", "fit-replace"])
def test_a_full_disk_is_one_line_and_loses_nothing(name, places, capsys, monkeypatch, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(places["run"], run)
    if name == "fit-replace":
        assert main(["fit", "gmm", "--data", places["csv"], "-k", "2", "--out", str(tmp_path / "gmm"),
                     "--quiet"]) == 0
        capsys.readouterr()
    argv = {"evaluate": ["evaluate", run, "-K", "4", "--quiet"],   # rewrites RUN/evaluation.json
            "plot": ["plot", run],                                 # rewrites RUN/plots/*.png
            "report": ["report", run, "--no-draw"],                # writes RUN/report.html
            "encode": ["encode", run, "--out", run / "codes_test.csv"],
            "sample": ["sample", run, "--out", run / "samples.png"],
            "fit-replace": ["fit", "gmm", "--data", places["csv"], "-k", "3", "--out", tmp_path / "gmm", "--force",
                            "--quiet"]}[name]
    (run / "codes_test.csv").write_text("before\n")
    (run / "samples.png").write_bytes(b"before")
    before = {**_snapshot(run), **_snapshot(tmp_path / "gmm")}

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code = main([str(a) for a in argv])
    _assert_one_os_line(code, capsys.readouterr().err, "no space left on the device")
    after = {**_snapshot(run), **_snapshot(tmp_path / "gmm")}
    assert after == before  # every file as it was: no half-written file, no leftover temporary
    assert not list(tmp_path.rglob(".*"))


def test_check_writable_names_what_is_wrong(tmp_path):
    (tmp_path / "f").write_text("x")
    for path, folder, errno_ in [(tmp_path / "f" / "x.png", False, errno.ENOTDIR), (tmp_path, False, errno.EISDIR),
                                 (tmp_path / "f", True, errno.ENOTDIR)]:
        with pytest.raises(OSError) as caught:
            layout.check_writable(path, folder=folder)
        assert caught.value.errno == errno_
    assert layout.check_writable(tmp_path / "new" / "deeper" / "x.png") == tmp_path / "new" / "deeper" / "x.png"
    assert not (tmp_path / "new").exists()  # checking creates nothing
