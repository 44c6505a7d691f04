"""# Building a custom variant from parts

In bayesgen a "VAE variant" is never a copy of the VAE with edits: it is the same
`LatentVariableModel(prior, likelihood, posterior)` with **one part swapped**, trained by the
same loop on an objective of your choice. The built-in variants (`--model mog-vae`,
`vamp-vae`, `planar-vae`, `iaf-vae`, `hvae`, `--beta`, `--objective iwae`) are made this way;
this tutorial makes a new one.

## A heavy-tailed prior

A standard-normal prior punishes codes far from the origin quadratically; a Student-t prior
`p(z) = Π_u StudentT(z_u; ν)` lets a few images take extreme codes cheaply. A prior is
anything that provides

* `log_prob(z, posterior=None)` for one code `z` of shape `(L,)`,
* `sample(key, n, posterior=None)` → `(n, L)`,
* `distribution()` → a numpyro distribution, or `None`.

(`posterior` is passed so that priors such as the VampPrior, which *are* the encoder at
learned inputs, can use it; ours ignores it.) Densities come from `numpyro.distributions`,
never hand-written.

## The objective must match

KL(q || p) between a Gaussian and a Student-t has no closed form, so the ELBO estimates it by
Monte Carlo: `ELBO(kl="mc")` — the same importance weights `log p(x, z) - log q(z | x)` as
before, averaged instead of split. Everything downstream (training, importance-sampled
log p(x), encoding, sampling) works unchanged because it only talks to the parts' seams.

## A named variant: one file

To reach the run layer (`bayesgen.runs.train`, `config.json`, resume, `bayesgen evaluate`,
plots, reports), the new part becomes a **variant**: a `bayesgen.variants.Variant` subclass
with a name, a frozen dataclass of options (each with its help text), their check, and how it
builds the model. That class is the whole change: **one file** (this one, or a module of your
own package), and no file of bayesgen. `register` makes it known to this process; to reach the
`bayesgen` command too, declare it as an entry point of your package:

    [project.entry-points."bayesgen.variants"]
    student-vae = "mypackage.student:StudentTVAE"

after which `bayesgen train --model student-vae --df 5` works (the flag comes from the option).
The built-in variants are made the same way, one file each in `src/bayesgen/variants/`.

Run it: `python docs/tutorials/02_custom_variant.py` (`BAYESGEN_TUTORIAL_TINY=1` for a few
seconds' version).
"""

import os
import tempfile
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import bayesgen
from bayesgen import runs
from bayesgen.config import Config
from bayesgen.lvm.presets import build_vae
from bayesgen.variants import Variant, option, register

TINY = os.environ.get("BAYESGEN_TUTORIAL_TINY") == "1"
EPOCHS, HIDDEN, K = (3, (32,), 50) if TINY else (100, (256, 128), 1000)


class StudentTPrior(bayesgen.Prior):
    """p(z) = Π_u StudentT(z_u; df), location 0, scale 1."""

    latent_dim: int = eqx.field(static=True)
    df: float = eqx.field(static=True, default=3.0)

    def distribution(self):
        return dist.StudentT(self.df, jnp.zeros(self.latent_dim), jnp.ones(self.latent_dim)).to_event(1)

    def log_prob(self, z, posterior=None):
        return self.distribution().log_prob(z)

    def sample(self, key, n: int, posterior=None):
        return self.distribution().sample(key, (n,))


# A part is checked like any other: its density integrates to one. With one dimension,
# a trapezoid rule over a wide grid is enough.
grid = jnp.linspace(-200.0, 200.0, 400_001)
mass = float(jnp.trapezoid(jnp.exp(jax.vmap(StudentTPrior(latent_dim=1).log_prob)(grid[:, None])), grid))
assert abs(mass - 1.0) < 1e-3, mass

# ## Swap the part into a ready-made VAE
# build_vae gives the standard model; eqx.tree_at replaces its prior and keeps the networks.
data = bayesgen.load_data("digits")
x = np.asarray(bayesgen.prepare(data, likelihood="categorical"))
order = np.random.default_rng(0).permutation(len(x))
train, test = x[order[:1500]], x[order[1500:]]
vae = bayesgen.build_vae(data_dim=64, latent_dim=2, likelihood="categorical", levels=17, hidden=HIDDEN,
                         key=jax.random.key(0))
student = eqx.tree_at(lambda m: m.prior, vae, StudentTPrior(latent_dim=2))

# ## Train both on the same data, with the objective each needs
# (the tiny CI setting trains only the new variant: the loop is the same for both)
variants = [("normal prior", vae, bayesgen.ELBO(kl="analytic")), ("Student-t prior", student, bayesgen.ELBO(kl="mc"))]
results = {}
for name, model, objective in variants[1:] if TINY else variants:
    fitted = bayesgen.fit(model, train, valid_x=test, key=jax.random.key(1), objective=objective, epochs=EPOCHS,
                          learning_rate=2e-3, progress=False).best_model
    results[name] = bayesgen.evaluate(fitted, test, jax.random.key(2), n_importance=K, kl="mc")
    r = results[name]
    print(f"{name:>16}: test ELBO {r['elbo']:.2f}, log p(x) {r['log_px']:.2f} ± {r['log_px_stderr']:.2f} nats")

# Both are bounds of their own model's log p(x); the comparison of log p(x) says which prior
# explains the test digits better (with these tiny settings, neither is trained enough to tell).
for r in results.values():
    assert r["elbo"] <= r["log_px"] + 3 * r["log_px_stderr"]


# ## The same model as a named variant
# Its options are a frozen dataclass; `option` attaches the help text the CLI shows.


@dataclass(frozen=True)
class StudentOptions:
    df: float = option(3.0, "degrees of freedom of the Student-t prior", "NU")


class StudentTVAE(Variant):
    name = "student-vae"
    summary = "a heavy-tailed Student-t prior"
    Options = StudentOptions

    def check(self, options):
        # checked once, here, in the model's terms
        if not options.df > 0:
            raise bayesgen.BayesgenError(f"the Student-t prior needs df > 0, got {options.df}")

    def build(self, options, **parts):
        model = build_vae(**parts)  # the standard parts, then ours swapped in
        return eqx.tree_at(lambda m: m.prior, model, StudentTPrior(latent_dim=model.latent_dim, df=options.df))


register(StudentTVAE)

# A whole run directory: config.json records the options, the checkpoints resume bit-exactly,
# and every command that takes a run (evaluate, sample, report) works on it. The KL has no
# closed form here, so `kl = "auto"` resolves to a Monte Carlo estimate by itself.
config = Config.from_dict({
    "data": {"source": "digits"},
    "model": {"name": "student-vae", "likelihood": "categorical", "latent_dim": 2, "hidden": list(HIDDEN),
              "options": {"df": 5.0}},
    "train": {"epochs": EPOCHS, "learning_rate": 2e-3},
    "eval": {"n_importance": K},
})
with tempfile.TemporaryDirectory() as folder:
    result = runs.train(config, f"{folder}/student", progress=False, make_plots=False)
    run = runs.open_run(f"{folder}/student")
    assert run.config.train.kl == "mc" and run.model.prior.df == 5.0
    print(f"student-vae run: test log p(x) {result['log_px']:.2f} ± {result['log_px_stderr']:.2f} nats")

# A bad option is refused before anything is computed, in the variant's words.
try:
    Config.from_dict({"model": {"name": "student-vae", "options": {"df": -1.0}}})
except bayesgen.BayesgenError as err:
    print(f"refused: {err}")
