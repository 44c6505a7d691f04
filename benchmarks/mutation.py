"""Mutation testing of the numerical core: plant small bugs, see whether the tests catch them.

Tool: pytest-gremlins (the ``mutation`` extra). Chosen over mutmut and cosmic-ray by what a JAX
code base needs, measured on lvm/objectives.py (2026-12-02):
  - every mutant runs in a fresh subprocess. mutmut 3 forks each mutant from a process that has
    already run the tests: the child inherits JAX's jit caches (the original, unmutated traces) and
    an XLA thread pool without its threads, so mutants would "survive" or hang.
  - coverage-guided test selection: a mutant runs only the tests that execute its line (a few,
    not a test file); cosmic-ray runs one fixed command per mutant. With cosmic-ray's reduced
    operator set the ten modules make ~2,900 mutants x 20-50 s per test-file run.
  - an incremental cache keyed by content: a rerun after a change tests only what changed.
  - equivalent mutants are pardoned in the source, next to the code, with a one-line reason
    (``# gremlin: pardon[equivalent] ...``), so the argument lives where the next reader looks.
    Where a line holds an equivalent mutant and a killable one, the pardon would hide the
    killable one: those few are argued in :data:`EQUIVALENT` below instead.
Its operators: arithmetic (+ - * / swaps), comparison, boundary (integer constants in
comparisons +-1), boolean (and/or, not, True/False) and return values.

    python benchmarks/mutation.py                      # every module below (hours on 2 cores)
    python benchmarks/mutation.py lvm/objectives em/gmm  # some modules
    python benchmarks/mutation.py --report             # the table from the saved results

Per module it runs ``pytest <its test files> --gremlins`` and saves the JSON report to
benchmarks/results/mutation/<module>.json; survivors are printed with their source line. The
score table belongs in TESTING.md. Not part of CI: it is slow.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

REPO = _common.REPO
OUT = _common.RESULTS / "mutation"

# module (under src/bayesgen) -> the test files whose tests check its maths. Coverage decides
# which of their tests each mutant runs.
MODULES = {
    "lvm/objectives": ["test_lvm_objectives", "test_lvm", "test_lvm_evaluation"],
    "lvm/evaluation": ["test_lvm_evaluation", "test_lvm"],
    "lvm/priors": ["test_lvm_priors", "test_lvm", "test_lvm_objectives"],
    "lvm/likelihoods": ["test_lvm_likelihoods", "test_lvm", "test_lvm_objectives", "test_fast_paths"],
    "em/gmm": ["test_em_gmm"],
    "em/factor_analysis": ["test_em_fa"],
    "em/lda": ["test_em_lda"],
    "bayes/diagnostics": ["test_bayes_summary", "test_bayes"],
    "bayes/kernels": ["test_bayes_kernels", "test_bayes", "test_bayes_models"],
    "train/checkpoint": ["test_checkpoint", "test_numerics", "test_train", "test_resume"],
}

# Equivalent mutants that a line pardon cannot single out: pytest-gremlins pardons whole lines, and
# its boundary operator makes two mutants with one description ("+/-1") of which one may be
# killable. Each entry: (module, the source line as written, the mutation's description, how many
# of the surviving mutants with that description are equivalent, why no result can change).
_FIRST_PADDING_DOCUMENT = ("'<= n_docs' adds the first padding document, which has no words: its gamma is exactly "
                           "alpha, whose Dirichlet term is 0")
EQUIVALENT = [
    ("lvm/evaluation", "if n_samples == 1:  # one weight says nothing about its own spread", "boundary shift +/-1", 1,
     "'== 0' never holds (K >= 1 is required above) and K = 1 then gives NaN from the formula too (0 * 1/0); "
     "'== 2' is killed by test_two_weights_have_a_spread_and_one_has_none"),
    ("lvm/likelihoods", "return jnp.maximum(s, 0) + jnp.log1p(e), jnp.where(s >= 0, 1.0, e) / (1.0 + e) * ds",
     ">= to >", 1, "the branches differ only at s = 0, where both give 1 / (1 + e^0) = 1/2"),
    ("lvm/objectives", "if self.n_samples == 1:", "boundary shift +/-1", 1,
     "'== 0' sends one draw through the vmapped mean, the same value; '== 2' is killed by "
     "test_elbo_with_several_draws_is_the_mean_over_them"),
    ("bayes/kernels", "keep = (offset >= 0) & (offset % thinning == 0)", "boundary shift +/-1", 1,
     "'>= -1' also keeps the last warm-up state (thinning 1) in slot 0, which offset 0 overwrites at once; "
     "'>= 1' is killed by test_run_chain_keeps_every_thinned_post_warmup_state_and_reports_on_schedule"),
    ("em/factor_analysis", "if stop < size:  # pad the last block with copies of a real row: finite, and cut off below",
     "< to <=", 1, "with stop == size the padding is empty; '>' is killed by "
     "test_refitting_and_scoring_new_sizes_does_not_recompile"),
    ("em/gmm", "log_lambda = d * math.log(2.0) + "
               "jnp.sum(digamma(0.5 * (nu - jnp.arange(d, dtype=nu.dtype)[:, None])), axis=0)",
     "* to /", 1, "d log 2 is the same for every component: a shift that cancels in the responsibilities (the bound "
     "does not use it); the other '*' on the line is killed"),
    ("em/gmm", "if finite and (best is None or bound > best[0]):", "> to >=", 1,
     "differs only when two restarts end at bit-identical bounds, and either is then a best one"),
    ("em/gmm", "require(weights.shape == (k,) and np.all(weights >= 0) and abs(weights.sum() - 1) < 1e-6,",
     "< to <=", 1,
     "the strictness of a float tolerance: no meaningful weights sum to exactly 1 +- 1e-6"),
    ("em/lda", "small = x < 10.0", "< to <=", 1,
     "at x = 10 both branches are accurate (the recurrence then the series, or the series alone: both to 1e-12 "
     "in float64, test_special_functions_are_exact_in_float64)"),
    ("em/lda", 'return jnp.einsum("rk,rkl->rl", e_theta_rows, e_beta) + _EPS', "+ to -", 1,
     "1e-30 is below float32 resolution of a normaliser that max-scaling keeps near 1; where the normaliser is "
     "0 (a padding slot of a word no topic produces) the count is 0 and 0 / -1e-30 is a zero weight too"),
    ("em/lda", "return (i < max_iter) & ~jnp.all(done) & (active_rows > row_budget)", "> to >=", 1,
     "when the active rows exactly fill the next buffer the stage hands over one iteration earlier; the next stage "
     "continues from the same state: how the work is split, not what is computed"),
    ("em/lda", "return i + 1, jnp.where(done[:, None], gamma, new), done | (change < tol)", "< to <=", 1,
     "a document whose mean change equals the tolerance exactly (a float coincidence) stops one iteration later"),
    ("em/lda", "keep = jnp.argsort(~(has_words & ~carry[2][rows[1]]), stable=True)[:budget]", "True to False", 1,
     "every active row is kept either way (there are at most `budget`); stability orders only rows that are done"),
    ("em/lda", "has_words = jnp.any(counts > 0, axis=1)", "> to >=", 1,
     "padding rows (count 0) then count as active while their block's document 0 is: a stage may run longer, and "
     "every really active row is still kept"),
    ("em/lda", "has_words = jnp.any(counts > 0, axis=1)", "boundary shift +/-1", 1,
     "'> -1' is '>= 0' on counts (argued on the line above); '> 1' is killed by "
     "test_e_step_matches_scikit_learns_per_document_loop"),
    ("em/lda", "return state._replace(topic_word=data.eta + sstats, epoch=state.epoch + 1)", "+ to -", 1,
     "batch VB never reads the epoch (only online VB's minibatch order does); 'eta - sstats' is killed"),
    ("em/lda", "if n <= 8:", "<= to <", 1, "n = 8 is 8 on either branch (the power of two, or 4 steps of 2)"),
    ("em/lda", "if n <= 8:", "boundary shift +/-1", 1,
     "'<= 7': n = 8 is 8 on either branch; '<= 9' is killed by test_round_up_sizes"),
    ("em/lda", "real = data.blocks.doc_index < data.n_docs", "< to <=", 1,
     _FIRST_PADDING_DOCUMENT),
    ("em/lda", "real = group.doc_index < data.n_docs", "< to <=", 1,
     _FIRST_PADDING_DOCUMENT),
    ("em/lda", "real = jnp.arange(gamma.shape[0]) < n_docs", "< to <=", 1,
     _FIRST_PADDING_DOCUMENT),
    ("em/lda", "k_new = jnp.minimum(jnp.sum(cdf < u * cdf[-1]), p.shape[0] - 1).astype(jnp.int32)", "< to <=", 1,
     "differs only when a uniform draw lands exactly on a cumulative probability (measure zero)"),
    ("em/lda", "k_new = jnp.minimum(jnp.sum(cdf < u * cdf[-1]), p.shape[0] - 1).astype(jnp.int32)", "- to +", 1,
     "the clamp never binds: u < 1, so u * cdf[-1] <= cdf[-1] and at most K - 1 entries lie below it"),
]


def _equivalent_survivors(module: str, survivors: list[dict]) -> set[str]:
    """The gremlin ids among ``survivors`` that :data:`EQUIVALENT` argues are equivalent."""
    marked = set()
    for mod, line, description, count, _ in EQUIVALENT:
        if mod != module:
            continue
        matching = [r["gremlin_id"] for r in survivors
                    if r["description"] == description and _source_line(r["file_path"], r["line_number"]) == line]
        marked.update(matching[:count])
    return marked


def run_module(module: str, workers: int, mutant_timeout: int) -> Path:
    source = f"src/bayesgen/{module}.py"
    tests = [f"tests/{name}.py" for name in MODULES[module]]
    report = REPO / "coverage" / "gremlins" / "gremlins.json"
    report.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "--gremlins",
           f"--gremlin-targets={source}", f"--gremlin-workers={workers}", "--gremlin-cache",
           "--gremlin-report=json", f"--gremlin-mutant-timeout={mutant_timeout}", "--gremlin-coverage-timeout=3600"]
    print(f"== {module}: {' '.join(cmd[3:])}", flush=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    proc = subprocess.run(cmd, cwd=REPO)  # its progress ("Progress i/n") goes straight to the terminal
    if not report.is_file():
        raise SystemExit(f"{module}: pytest-gremlins wrote no report (exit {proc.returncode}); its output is above")
    data = json.loads(report.read_text())
    data["run"] = {"module": module, "tests": tests, "started": started.isoformat(timespec="seconds"),
                   "wall_s": round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()),
                   "machine": _common.machine_info()}
    out = OUT / f"{module.replace('/', '.')}.json"
    _common.write_json(out, data)
    shutil.rmtree(REPO / "coverage", ignore_errors=True)
    return out


def _source_line(path: str, line: int) -> str:
    try:
        return (REPO / path).read_text().splitlines()[line - 1].strip()
    except (OSError, IndexError):
        return "?"


def summary_row(data: dict, equivalent: int) -> list:
    s = data["summary"]
    zapped, survived, timeout = s["zapped"], s["survived"] - equivalent, s.get("timeout", 0)
    pardoned = sum(1 for r in data["results"] if r["status"] == "pardoned") + equivalent
    # a timeout means the mutant changed behaviour (an endless loop): counted as caught
    caught = zapped + timeout
    judged = caught + survived
    return [data["run"]["module"], s["total"], zapped, timeout, survived, pardoned,
            f"{100 * caught / judged:.1f}%" if judged else "-", data["run"]["started"][:10], data["run"]["wall_s"]]


def report(modules: list[str]) -> None:
    rows, survivors = [], []
    for module in modules:
        path = OUT / f"{module.replace('/', '.')}.json"
        if not path.is_file():
            rows.append([module, "-", "-", "-", "-", "-", "not run", "-", "-"])
            continue
        data = json.loads(path.read_text())
        survived = [r for r in data["results"] if r["status"] == "survived"]
        equivalent = _equivalent_survivors(module, survived)
        rows.append(summary_row(data, len(equivalent)))
        survivors += [(module, r) for r in survived if r["gremlin_id"] not in equivalent]
    print(_common.markdown_table(["module", "mutants", "killed", "timeout (caught)", "survived", "equivalent (argued)",
                                  "caught of non-equivalent", "date", "wall s"], rows))
    if survivors:
        print(f"\n{len(survivors)} survivors:")
        for module, r in survivors:
            print(f"  {r['file_path']}:{r['line_number']} [{r['operator']}] {r['description']}   | "
                  f"{_source_line(r['file_path'], r['line_number'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: all): {', '.join(MODULES)}")
    parser.add_argument("--report", action="store_true", help="only print the table and survivors of the saved results")
    parser.add_argument("--workers", type=int, default=_common.cpu_count())
    parser.add_argument("--mutant-timeout", type=int, default=300, help="seconds per mutant's test run (JAX compiles)")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    modules = args.modules or list(MODULES)
    if not args.report:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".jax_cache"))
        # Coverage picks each mutant's tests by the lines they execute, and a jitted function's
        # Python runs only when it is traced: with JAX's in-memory caches, only the first test to
        # trace a function "covers" its lines, and the tests that check its values are never run
        # on its mutants. tests/conftest.py clears the caches before every test when this is set.
        os.environ["BAYESGEN_MUTATION"] = "1"
        for module in modules:
            run_module(module, args.workers, args.mutant_timeout)
    report(modules)


if __name__ == "__main__":
    main()
