"""The run report (structure always; rendering in headless Chromium when it can be had), run
listing, incomplete-run messages, per-dimension KL, rate-distortion and shell completion."""

import base64
import html.parser
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bayesgen.cli import main

HERE = Path(__file__).parent


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.headings, self._in_h2 = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


def _headings(text: str) -> list[str]:
    page = _Collector()
    page.feed(text)
    return page.headings


def check_self_contained(path: Path) -> _Collector:
    """Every image a valid embedded PNG, no script, no stylesheet link, no URL leaving the page."""
    text = path.read_text()
    page = _Collector()
    page.feed(text)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert images
    for attrs in images:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            assert image.format == "PNG" and image.size == (int(attrs["width"]), int(attrs["height"]))
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed"), tag
        for name, value in attrs.items():
            if name in ("href", "src", "action", "srcset"):
                assert value.startswith(("#", "data:")), (tag, name, value[:80])
    assert "url(" not in text.split("<body>")[0]  # no external fonts or images in the styles
    assert "Content-Security-Policy" in text
    return page


# --- fit runs (real, tiny) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def fit_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fits")
    rng = np.random.default_rng(0)
    np.savetxt(root / "points.csv", np.concatenate([rng.normal(0, 1, (40, 2)),
                                                    rng.normal(6, 0.5, (40, 2))]), delimiter=",")
    texts = root / "texts"
    texts.mkdir()
    words = ["cat dog pet fur paw tail".split(), "stock market price trade bank fund".split()]
    for i in range(10):
        (texts / f"doc{i}.txt").write_text(" ".join(rng.choice(words[i % 2], 30)))
    runs = root / "runs"
    assert main(["fit", "gmm", "--data", str(root / "points.csv"), "-k", "2", "--out", str(runs / "gmm")]) == 0
    assert main(["fit", "lda", "--data", str(texts), "-k", "2", "--max-iter", "10",
                 "--out", str(runs / "lda"), "--quiet"]) == 0
    return runs


@pytest.fixture(scope="module")
def bayes_run(tmp_path_factory):
    """A tiny ``bayesgen bayes fit`` run: the centred eight-schools model (a funnel) on the first
    four schools (fewer scalars, quicker plots), 2 chains of 50 draws; NUTS's compile dominates."""
    from bayesgen.bayes.models import EIGHT_SCHOOLS

    root = tmp_path_factory.mktemp("bayes")
    rows = "".join(f"{y:g},{s:g}\n" for y, s in zip(EIGHT_SCHOOLS["y"][:4], EIGHT_SCHOOLS["sigma"][:4]))
    (root / "schools.csv").write_text("y,sigma\n" + rows)
    run = root / "schools"
    assert main(["bayes", "fit", "eight-schools-centered", "--data", str(root / "schools.csv"), "--out", str(run),
                 "--chains", "2", "--warmup", "50", "--samples", "50", "--quiet"]) == 0
    return run


# --- structure ---------------------------------------------------------------------------------


def test_vae_report_is_self_contained_and_complete(tiny_run, tmp_path, capsys):
    run, result = tiny_run
    code, out, _ = run_cli(capsys, "report", run, "--out", tmp_path / "report.html")
    assert code == 0 and out.strip() == str(tmp_path / "report.html")
    page = check_self_contained(tmp_path / "report.html")
    for heading in ("Evaluation", "Training", "Learning curves", "Samples", "Reconstructions", "Latent space",
                    "Posterior collapse", "Interpolation", "Configuration"):
        assert heading in page.headings, heading
    text = (tmp_path / "report.html").read_text()
    evaluation = json.loads((run / "evaluation.json").read_text())  # other tests may re-evaluate the shared run
    assert f"<td>{evaluation['log_px']:.4g}</td>" in text and "Not in this run directory" not in text
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary left


def test_report_redraws_missing_plots_and_names_what_is_missing(tiny_run, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(tiny_run[0], run)
    shutil.rmtree(run / "plots")  # e.g. trained with --no-plots: the report draws them from the checkpoint
    assert run_cli(capsys, "report", run)[0] == 0
    assert (run / "plots" / "samples.png").is_file()
    assert "Not in this run directory" not in (run / "report.html").read_text()

    (run / "evaluation.json").unlink()
    (run / "plots" / "samples.png").write_bytes(b"not a png")
    assert run_cli(capsys, "report", run, "--no-draw")[0] == 0
    text = (run / "report.html").read_text()
    assert text.count("not evaluated (no evaluation.json): run bayesgen evaluate") == 1
    assert "plots/samples.png is not a valid PNG" in text and "Evaluation" not in _headings(text)
    shutil.rmtree(run / "checkpoints")  # nothing can be redrawn now
    assert run_cli(capsys, "report", run, "--no-draw")[0] == 0
    text = (run / "report.html").read_text()
    assert "no checkpoint yet" in text and "not evaluated" not in text  # the cause, not its consequence
    check_self_contained(run / "report.html")
    (run / "plots" / "loss.png").unlink()
    assert run_cli(capsys, "report", run)[0] == 0
    assert "plots could not be drawn: checkpoint" in (run / "report.html").read_text()

    code, _, err = run_cli(capsys, "sample", run)  # an incomplete run: one line saying what to do
    assert code == 2 and err.count("\n") == 1 and "has not finished its first epoch" in err
    code, _, err = run_cli(capsys, "report", tmp_path / "nope")
    assert code == 2 and "does not exist" in err
    assert run_cli(capsys, "report", run, "--out", tmp_path / "r.txt")[2].count("end its file name in .html") == 1


def test_fit_reports_and_the_run_listing(fit_runs, tiny_run, tmp_path, capsys):
    gmm = check_self_contained(Path(run_cli(capsys, "report", fit_runs / "gmm")[1].strip()))
    assert {"Summary", "Mixture weights", "Component means", "Component covariances", "Clusters",
            "Convergence"} <= set(gmm.headings)
    lda_path = Path(run_cli(capsys, "report", fit_runs / "lda")[1].strip())
    lda = check_self_contained(lda_path)
    assert {"Summary", "Topics", "Topic words", "Convergence"} <= set(lda.headings)
    assert "cat" in lda_path.read_text() and "stock" in lda_path.read_text()

    shutil.copytree(tiny_run[0], fit_runs / "nested" / "tiny")
    code, out, _ = run_cli(capsys, "runs", fit_runs)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["RUN", "KIND", "MODEL"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"gmm", "lda", "nested/tiny"}
    assert "log-lik/row" in rows["gmm"] and "held-out perplexity" in rows["lda"]
    evaluation = json.loads((tiny_run[0] / "evaluation.json").read_text())  # as other tests left it
    log_px = re.escape(f"{evaluation['log_px']:.4g}")
    assert re.search(rf"test log p\(x\) K={evaluation['n_importance']} +{log_px}  ", rows["nested/tiny"])
    (fit_runs / "nested" / "tiny" / "evaluation.json").unlink()
    assert ("nested/tiny: not evaluated (no evaluation.json): run bayesgen evaluate"
            in run_cli(capsys, "runs", fit_runs)[1])
    assert "no runs under" in run_cli(capsys, "runs", tmp_path)[2]

    code, _, err = run_cli(capsys, "evaluate", fit_runs / "gmm")
    assert code == 2 and "holds a 'bayesgen fit gmm' run, not a VAE run" in err and err.count("\n") == 1


# --- rendering ---------------------------------------------------------------------------------

_CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => __errors.push('error: ' + (e.message || (e.target && e.target.tagName))), true);
document.addEventListener('securitypolicyviolation', e => __errors.push('blocked by CSP: ' + e.blockedURI));
for (const level of ['error', 'warn']) {
  const original = console[level];
  console[level] = (...args) => { __errors.push(level + ': ' + args.join(' ')); original.apply(console, args); };
}
window.addEventListener('load', () => {
  const images = [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}));
  const out = document.createElement('pre');
  out.id = '__check';
  out.textContent = JSON.stringify({images, errors: __errors});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="session")
def chromium():
    found = shutil.which("chromium")
    if found is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("chromium is not installed and cannot be (needs root and apt-get): apt-get install chromium")
        proc = subprocess.run(["bash", str(HERE / "setup_chromium.sh")], capture_output=True, text=True, timeout=600)
        found = shutil.which("chromium")
        if proc.returncode != 0 or found is None:
            pytest.skip(f"installing chromium failed: {proc.stderr.strip()[-300:]}")
    return found


def render(chromium: str, report: Path, tmp_path: Path) -> dict:
    """Load the report (with a checking script put before its CSP) and return what the script saw."""
    page = tmp_path / f"checked-{report.parent.name}.html"
    page.write_text(report.read_text().replace("<head>", "<head>" + _CHECK, 1))
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                           "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    marker = '<pre id="__check">'
    assert marker in proc.stdout, proc.stdout[-500:]
    result = json.loads(html.unescape(proc.stdout.split(marker, 1)[1].split("</pre>", 1)[0]))
    result["console"] = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return result


def test_reports_render_in_headless_chromium(chromium, tiny_run, fit_runs, bayes_run, tmp_path):
    from bayesgen.report import write_report

    for run in (tiny_run[0], fit_runs / "lda", bayes_run):
        report = write_report(run, tmp_path / run.name / "report.html", draw_missing=False)
        result = render(chromium, report, tmp_path)
        assert len(result["images"]) == report.read_text().count("<img ")
        bad = [image for image in result["images"] if not image["complete"] or image["width"] <= 0]
        assert not bad, bad
        assert result["errors"] == [] and result["console"] == [], result


def test_the_checker_sees_a_broken_page(chromium, tmp_path):
    # The rendering check itself must be able to fail: a broken image and an external URL.
    report = tmp_path / "broken" / "report.html"
    report.parent.mkdir()
    from bayesgen.report import CSP

    report.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head>'
                      '<body><img alt="a" src="data:image/png;base64,AAAA"><img alt="b" src="https://example.invalid/x.png">'
                      '</body></html>')
    result = render(chromium, report, tmp_path)
    assert [image["width"] for image in result["images"]] == [0, 0]
    assert any("blocked by CSP" in e for e in result["errors"])


# --- diagnostics and plots ---------------------------------------------------------------------


def test_kl_per_dimension_sums_to_the_elbo_kl(tiny_run):
    import jax

    from bayesgen import build_vae
    from bayesgen._errors import BayesgenError
    from bayesgen.lvm.evaluation import kl_per_dimension
    from bayesgen.runs import open_run

    run = open_run(tiny_run[0])
    kl = kl_per_dimension(run.model, run.data.test)
    assert kl.shape == (2,) and np.all(kl > 0)
    # evaluation.json's KL is the analytic ELBO term averaged over the same test split
    np.testing.assert_allclose(kl.sum(), tiny_run[1]["kl"], rtol=1e-5)
    mixture = build_vae(data_dim=4, latent_dim=2, likelihood="bernoulli", hidden=(8,), prior="mog", n_components=2,
                        key=jax.random.key(0))
    with pytest.raises(BayesgenError, match="needs a factorised Gaussian prior and posterior.*MixtureOfGaussians"):
        kl_per_dimension(mixture, np.zeros((3, 4), np.float32))


def test_rate_distortion_across_runs(tiny_run, fit_runs, tmp_path, capsys):
    runs = []
    for beta, kl, recon in ((0.5, 9.0, -140.0), (1.0, 5.0, -150.0), (4.0, 1.0, -170.0)):
        run = tmp_path / f"beta{beta}"
        shutil.copytree(tiny_run[0], run, ignore=shutil.ignore_patterns("checkpoints", "plots"))
        saved = json.loads((run / "config.json").read_text())
        saved["config"]["train"]["beta"] = beta
        (run / "config.json").write_text(json.dumps(saved))
        evaluation = json.loads((run / "evaluation.json").read_text())
        (run / "evaluation.json").write_text(json.dumps({**evaluation, "kl": kl, "reconstruction": recon}))
        runs.append(run)
    out = tmp_path / "rd.png"
    code, printed, err = run_cli(capsys, "plot", "--rate-distortion", *runs, "--out", out)
    assert code == 0, err
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 300
    code, _, err = run_cli(capsys, "plot", "--rate-distortion", runs[0], fit_runs / "gmm", "--out", out)
    assert code == 2 and "rate-distortion needs runs from bayesgen train" in err
    (runs[0] / "evaluation.json").unlink()
    code, _, err = run_cli(capsys, "plot", "--rate-distortion", *runs)
    assert code == 2 and "has no evaluation.json; run bayesgen evaluate" in err
    assert run_cli(capsys, "plot")[0] == 2


# --- command-line polish -----------------------------------------------------------------------


def test_version_and_completion(capsys, tmp_path):
    from bayesgen import __version__

    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"bayesgen {__version__}"
    code, script, _ = run_cli(capsys, "completion", "bash")
    assert code == 0
    (tmp_path / "completion.bash").write_text(script)
    probes = {
        "bayesgen re": {"report", "reconstruct"},
        "bayesgen fit g": {"gmm"},
        "bayesgen fit gmm --covariance-type d": {"diag"},
        "bayesgen train --out x --lik": {"--likelihood"},
        "bayesgen evaluate run --checkpoint ''": {"best", "last"},
        "bayesgen completion ''": {"bash", "zsh"},
        "bayesgen fit --quiet l": {"lda"},
    }
    lines = [f"source {tmp_path / 'completion.bash'}",
             'probe() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
             'COMPREPLY=(); _bayesgen; echo "${COMPREPLY[*]}"; }']
    lines += [f"probe {words}" for words in probes]
    proc = subprocess.run(["bash", "--norc", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for (words, expected), got in zip(probes.items(), proc.stdout.splitlines()):
        assert set(got.split()) == expected, (words, got)
    code, zsh, _ = run_cli(capsys, "completion", "zsh")
    assert code == 0 and "bashcompinit" in zsh and "complete -o filenames" in zsh
    if shutil.which("zsh"):  # zsh's compgen emulation leaves the prefix filtering to compadd: expect supersets
        (tmp_path / "completion.zsh").write_text(zsh)
        lines[0] = f"source {tmp_path / 'completion.zsh'}"
        lines[1] = lines[1].replace("$((${#COMP_WORDS[@]} - 1))", "$(($# - 1))")
        proc = subprocess.run(["zsh", "-f", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        for (words, expected), got in zip(probes.items(), proc.stdout.splitlines()):
            assert expected <= set(got.split()), (words, got)
    assert run_cli(capsys, "completion", "fish")[0] == 2
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(command in listed for command in ("report", "runs", "completion"))


def test_fit_commands_take_quiet_after_the_model(fit_runs, tmp_path, capsys):
    args = ["fit", "lda", "--data", str(fit_runs.parent / "texts"), "-k", "2", "--max-iter", "10",
            "--out", str(tmp_path / "lda"), "--quiet"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "perplexity" not in out  # quiet: only the topics
    code, out, _ = run_cli(capsys, *args[:-1], "--force")
    assert code == 0 and "perplexity" in out


def test_bayes_fit_report(bayes_run, tmp_path, capsys):
    run = tmp_path / "schools"
    shutil.copytree(bayes_run, run)
    (run / "plots" / "rank.png").unlink()  # e.g. lost, or written with --no-plots: drawn from draws.npz
    code, out, _ = run_cli(capsys, "report", run)
    assert code == 0 and (run / "plots" / "rank.png").is_file()
    page = check_self_contained(run / "report.html")
    assert page.headings == ["Settings", "Posterior summary", "Diagnostics", "Trace plots", "Rank plots", "Pairs",
                             "Posterior predictive check"]
    text = (run / "report.html").read_text()
    summary = json.loads((run / "summary.json").read_text())
    for shown in ("eight-schools-centered", "ess_bulk", "r_hat", "hdi_5%", "theta[3]", "step size (adapted)",
                  "mean tree depth", "divergent transitions", "num_warmup", *summary["problems"]):
        assert html.escape(shown) in text, shown
    assert "Not in this run directory" not in text

    code, out, _ = run_cli(capsys, "runs", run.parent)  # listed as a Bayesian fit with its headline number
    assert "bayes  eight-schools-centered nuts 2x50" in out
    assert re.search(r"max R-hat +" + re.escape(f"{summary['max_rhat']:.4g}") + " ", out)

    for name in ("trace", "rank", "pair"):  # nothing can be drawn without the draws: each absence is named
        (run / "plots" / f"{name}.png").unlink()
    (run / "draws.npz").unlink()
    assert run_cli(capsys, "report", run)[0] == 0
    text = (run / "report.html").read_text()
    assert "plots could not be drawn: draws.npz is missing" in text and "plots/trace.png: rerun" in text
    assert "draws.npz (the draws) is missing" in run_cli(capsys, "runs", run.parent)[1]
    code, _, err = run_cli(capsys, "evaluate", run)  # VAE commands name the command that wrote it
    assert code == 2 and "holds a 'bayesgen bayes fit' run, not a VAE run" in err


def test_report_of_a_run_kind_it_does_not_know(tmp_path, capsys):
    # e.g. a NumPyro fit written by a newer command: its summary and every image still show
    from bayesgen import plots

    run = tmp_path / "schools"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"model": "eight-schools", "max_rhat": 1.004, "divergences": 0}))
    plots.loss_curve([{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.0}], run / "plots" / "trace.png")
    code, out, _ = run_cli(capsys, "report", run)
    assert code == 0
    page = check_self_contained(run / "report.html")
    assert page.headings == ["Summary", "Other images"]
    assert "max_rhat" in (run / "report.html").read_text()
    assert "eight-schools" in run_cli(capsys, "runs", tmp_path)[1]


# --- what a report shows of a mixture, a variant and a number ------------------------------------


def _gmm_run(root: Path, means: np.ndarray, covariances: np.ndarray, covariance_type: str) -> Path:
    """A ``bayesgen fit gmm`` run directory as the command writes it, without its plots."""
    from bayesgen import layout

    run = root / f"gmm-{covariance_type}-{means.shape[1]}d"
    run.mkdir()
    layout.write_manifest(run, "gmm")
    k, d = means.shape
    (run / "summary.json").write_text(json.dumps({
        "model": "gmm", "data": "points.csv", "n_samples": 100, "n_features": d, "n_components": k,
        "covariance_type": covariance_type, "seed": 0, "log_likelihood": -31.10535978010514, "n_iter": 26,
        "converged": True, "fit_seconds": 12.683, "weights": [1 / k] * k, "bic": 192156.96661156477}))
    with open(run / "params.npz", "wb") as f:
        np.savez(f, weights=np.full(k, 1 / k), means=means, covariances=covariances)
    return run


def _cells(text: str) -> list[str]:
    return re.findall(r"<td>([^<]*)</td>", text)


def check_balanced_tables(text: str) -> None:
    """Every table cell opened is closed (the nested matrices included)."""
    assert text.count("<td>") == text.count("</td>") and text.count("<table") == text.count("</table>")


def test_gmm_report_shows_means_and_covariances(tmp_path):
    from bayesgen.report import write_report

    means = np.array([[1.23456789, -0.5, 2e-9], [6.0, 5.98765432, 6.1]])  # 2e-9: float32 round-off of a 0
    covariances = np.array([[[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]], np.eye(3) * 0.25])
    text = write_report(_gmm_run(tmp_path, means, covariances, "full"), draw_missing=False).read_text()
    assert {"Mixture weights", "Component means", "Component covariances"} <= set(_headings(text))
    cells = _cells(text)
    assert ["0", "1.235", "-0.5", "0"] == cells[cells.index("1.235") - 1:cells.index("1.235") + 3]
    assert "5.988" in cells and "1.23456789" not in text and "2e-09" not in text
    assert "<table class='matrix'><tr><td>2</td><td>0.3</td><td>0</td></tr>" in text  # whole 3 x 3 matrices
    # sensible significant figures (4), never 17 digits; big numbers whole, not 1.922e+05
    assert "<td>-31.11</td>" in text and "<td>192157</td>" in text and "<td>12.68</td>" in text
    assert "-31.10535978010514" not in text and "-31.1054" not in text

    wide = np.arange(2 * 20, dtype=float).reshape(2, 20) / 7
    text = write_report(_gmm_run(tmp_path, wide, np.full((2, 20), 0.5) + np.arange(20) / 10, "diag"),
                        draw_missing=False).read_text()
    assert "The first 8 of 20 features" in text and "<th>x[7]</th>" in text and "<th>x[8]</th>" not in text
    assert "<th>max over 20</th>" in text and "<td>2.714</td>" in text  # max of row 0: 19 / 7
    assert "<th>total variance (trace)</th>" in text and "<td>29</td>" in text  # 20 * 0.5 + 0.1 * (0 + ... + 19)
    check_balanced_tables(text)

    tied = write_report(_gmm_run(tmp_path, means, covariances[0], "tied"), draw_missing=False).read_text()
    assert "<td>all (tied)</td>" in tied and tied.count("class='matrix'") == 1
    spherical = write_report(_gmm_run(tmp_path, means, np.array([0.5, 2.0]), "spherical"),
                             draw_missing=False).read_text()
    assert "<th>variance</th>" in spherical and _cells(spherical)[-4:] == ["0", "0.5", "1", "2"]


def test_gmm_report_without_params_says_so(tmp_path):
    from bayesgen.report import write_report

    run = _gmm_run(tmp_path, np.zeros((2, 2)), np.stack([np.eye(2)] * 2), "full")
    (run / "params.npz").unlink()
    text = write_report(run, draw_missing=False).read_text()
    assert "params.npz (the means and covariances) is missing" in text
    assert "Component means" not in _headings(text)


@pytest.mark.parametrize("name", ["vae", "mog-vae"])
def test_vae_report_lists_only_the_options_of_the_runs_variant(tmp_path, name):
    """A format-1 config.json recorded every variant's options side by side in [model]."""
    import dataclasses

    from bayesgen import variants
    from bayesgen.report import write_report

    run = tmp_path / "legacy"
    shutil.copytree(HERE / "fixtures" / "format1_mog_vae", run)
    saved = json.loads((run / "config.json").read_text())
    assert {"n_pseudo", "n_flows", "temperature"} <= set(saved["config"]["model"])  # the defect's input
    saved["config"]["model"]["name"] = name
    (run / "config.json").write_text(json.dumps(saved))
    text = write_report(run, draw_missing=False).read_text()
    own = {f.name for f in dataclasses.fields(variants.get(name).Options)}
    others = {f.name for v in variants.variants().values() for f in dataclasses.fields(v.Options)} - own
    assert others and not [key for key in others if f"<td>{key}</td>" in text]
    if own:
        assert "<h3>[model.options]</h3>" in text and "<td>n_components</td><td>3</td>" in text
    else:
        assert "The vae model has no options of its own." in text
    assert "<td>latent_dim</td><td>2</td>" in text
