"""# From Bayes' theorem to a trained VAE

A variational autoencoder is not a new kind of model. It is an old one — a latent variable
model — fitted by an old idea — variational inference — made fast by two tricks. This
tutorial builds one from its parts and checks each step numerically.

## The model

Each 8×8 digit image `x` is explained by a code `z` in two dimensions:

    z ~ p(z) = N(0, I)                 (the prior)
    x | z ~ p(x | z)                   (the likelihood: a decoder network g(z) giving,
                                        for each pixel, probabilities of its 17 grey levels)

## Bayes' theorem, and why it stops us

What the data say about the code of one image is the posterior

    p(z | x) = p(x | z) p(z) / p(x),     p(x) = ∫ p(x | z) p(z) dz.

With a neural decoder the integral `p(x)` has no closed form, so neither has the posterior,
and maximum likelihood (maximise `log p(x)` over the decoder's weights) cannot be done directly.

## Variational inference: the ELBO

Pick a family `q(z | x)` of easy distributions (here a diagonal Gaussian) and rewrite:

    log p(x) = E_q[log p(x, z) - log q(z | x)] + KL(q(z | x) || p(z | x))
             = ELBO(x)                           + (something >= 0)

so the **evidence lower bound** `ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z))` is below
`log p(x)`, with equality when `q` is the true posterior. Raising the ELBO both fits the
model and pulls `q` towards the posterior. Its two terms have names: *reconstruction*
(how well codes explain the image) and *KL* (how many nats the code spends).

## The two tricks

* **Amortization.** Instead of one `q` per image, an *encoder* network maps any `x` to the
  mean and log-variance of `q(z | x)`. One network, all images, and new images for free.
* **Reparameterization.** A draw `z = mu(x) + sigma(x) * eps`, `eps ~ N(0, I)`, is a
  differentiable function of the encoder's outputs, so a one-sample Monte Carlo estimate
  of the ELBO has a gradient that backpropagation computes (Kingma & Welling, 2014).

Run it: `python docs/tutorials/01_vae_from_bayes_theorem.py` (about a minute on 2 CPU cores;
`BAYESGEN_TUTORIAL_TINY=1` runs a few seconds' version, as CI does). Pictures go to
`tutorial_output/` (or `$BAYESGEN_TUTORIAL_OUT`).
"""

import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import bayesgen
from bayesgen import plots

TINY = os.environ.get("BAYESGEN_TUTORIAL_TINY") == "1"
OUT = Path(os.environ.get("BAYESGEN_TUTORIAL_OUT", "tutorial_output")) / "01"
EPOCHS, HIDDEN = (3, (32,)) if TINY else (150, (256, 128))

# ## The data, in the likelihood's units
# The digits store grey levels 0..16; a categorical likelihood over 17 levels takes them as
# they are. `prepare` would scale to [0, 1] for a Bernoulli or Gaussian likelihood instead.
data = bayesgen.load_data("digits")
x = np.asarray(bayesgen.prepare(data, likelihood="categorical"))
order = np.random.default_rng(0).permutation(len(x))
train, test = x[order[:1500]], x[order[1500:]]

# ## The parts
# Each part is one small object; the model is just the three together.
key_dec, key_enc, key_fit, key_check, key_eval = jax.random.split(jax.random.key(0), 5)
latent_dim, levels, data_dim = 2, 17, x.shape[1]
prior = bayesgen.StandardNormal(latent_dim=latent_dim)
decoder = bayesgen.MLP(latent_dim, levels * data_dim, hidden=HIDDEN[::-1], key=key_dec)  # 17 logits per pixel
likelihood = bayesgen.Categorical(decoder=decoder, data_dim=data_dim, levels=levels)
encoder = bayesgen.MLP(data_dim, 2 * latent_dim, hidden=HIDDEN, key=key_enc)  # mean and log-variance
posterior = bayesgen.DiagonalGaussian(encoder=encoder, latent_dim=latent_dim)
model = bayesgen.LatentVariableModel(prior=prior, likelihood=likelihood, posterior=posterior)

# ## The ELBO by hand, for one image
# Reparameterized draws z = mu + sigma * eps, then the average of log p(x, z) - log q(z | x).
x0 = jnp.asarray(test[0])
mu, sigma = posterior.mean_and_std(x0)
eps = jax.random.normal(key_check, (4000, latent_dim))
z = mu + sigma * eps
log_weights = eqx.filter_jit(lambda m, z: jax.vmap(lambda zi: m.log_joint(x0, zi))(z)
                             - m.posterior.distribution(x0).log_prob(z))(model, z)
by_hand, stderr = float(log_weights.mean()), float(log_weights.std() / np.sqrt(len(z)))
# bayesgen's ELBO objective computes the same quantity, with the KL term in closed form, so only
# the reconstruction term is sampled (here with as many draws, from its own key):
value, terms = eqx.filter_jit(bayesgen.ELBO(kl="analytic", n_samples=len(z)))(
    model, x0, jax.random.fold_in(key_check, 1))
print(f"ELBO of one image: by hand {by_hand:.2f} ± {stderr:.2f}, bayesgen.ELBO {float(terms['elbo']):.2f} "
      f"(reconstruction {float(terms['reconstruction']):.2f}, KL {float(terms['kl']):.2f})")
assert abs(by_hand - float(terms["elbo"])) < 5 * stderr
# and the Monte Carlo KL, the average of log q(z | x) - log p(z) over the draws, matches the closed form:
kl_draws = log_weights - eqx.filter_jit(lambda m, z: jax.vmap(lambda zi: m.likelihood.log_prob(x0, zi))(z))(model, z)
kl_draws = -kl_draws  # log q(z | x) - log p(z) = log p(x | z) - [log p(x, z) - log q(z | x)]
assert abs(float(kl_draws.mean()) - float(terms["kl"])) < 5 * float(kl_draws.std()) / np.sqrt(len(z))

# ## Training: stochastic gradient ascent on the ELBO
# One compiled epoch per call (a lax.scan over minibatches); validation picks the best model.
result = bayesgen.fit(model, train, valid_x=test, key=key_fit, epochs=EPOCHS, batch_size=128,
                      learning_rate=2e-3, progress=not TINY)
print(f"trained {len(result.history)} epochs; best validation loss {min(r['valid_loss'] for r in result.history):.2f}")

# ## Is the bound a bound? Importance sampling says how loose it is
# log p(x) ≈ log (1/K) Σ p(x, z_k) / q(z_k | x), z_k ~ q: never below the ELBO on average.
table = bayesgen.evaluate(result.best_model, test, key_eval, n_importance=50 if TINY else 1000)
print(f"test ELBO {table['elbo']:.2f} <= log p(x) {table['log_px']:.2f} ± {table['log_px_stderr']:.2f} nats; "
      f"{table['active_units']} of {latent_dim} latent dimensions in use")
assert table["elbo"] <= table["log_px"] + 3 * table["log_px_stderr"]

# ## What was learned
means, _ = bayesgen.encode(result.best_model, test)
plots.latent_scatter(means, OUT / "latent.png", labels=data.labels[order[1500:]])
samples = bayesgen.decode(result.best_model,
                          jax.random.normal(jax.random.key(1), (64, latent_dim)))  # E[x | z], z ~ p(z)
plots.image_grid(np.asarray(samples), (8, 8), OUT / "samples.png", title="z ~ p(z), then E[x | z]")
print(f"pictures in {OUT}")
