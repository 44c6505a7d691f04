"""The parts compose: every prior x posterior x likelihood x network x structure that
``build_vae`` allows trains a step, scores log p(x), samples and survives a checkpoint, and
every combination it refuses is one of a short list of rules, said in the message: mathematical
ones, and one that is wiring (M2 wraps the ELBO-type objectives, not AVB's adversarial one).

Running every allowed combination (hundreds) would cost CI minutes of compiling; the run
covers every *pair* of choices instead (a greedy all-pairs design: each value of each factor
meets each value of every other factor in at least one model built), which is where wiring
between two parts breaks.
"""

import itertools
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesgen._errors import BayesgenError
from bayesgen.lvm.adversarial import Adversarial
from bayesgen.lvm.evaluation import log_marginal_likelihood
from bayesgen.lvm.objectives import ELBO
from bayesgen.lvm.presets import LIKELIHOODS, NETWORKS, POSTERIORS, PRIORS, build_vae
from bayesgen.lvm.semisupervised import SemiSupervised
from bayesgen.train.checkpoint import load_checkpoint, save_checkpoint
from bayesgen.train.loop import init, make_optimizer, make_step

FACTORS = {
    "structure": ("flat", "hvae", "ladder", "categorical", "m2"),
    "prior": PRIORS,
    "posterior": POSTERIORS,
    "likelihood": LIKELIHOODS,
    "network": NETWORKS,
    "conditional": (False, True),
}
D, C, LEVELS, SHAPE = 64, 3, 3, (8, 8)
COMBOS = [dict(zip(FACTORS, values)) for values in itertools.product(*FACTORS.values())]


def _rows(combo, n=4, seed=0):
    """``n`` rows ``[x, one_hot(c)]`` in the likelihood's support."""
    rng = np.random.default_rng(seed)
    x = {"bernoulli": rng.integers(0, 2, (n, D)), "categorical": rng.integers(0, LEVELS, (n, D))}.get(
        combo["likelihood"], rng.normal(0.5, 0.2, (n, D)))
    c = np.eye(C)[np.arange(n) % C] if combo["conditional"] else np.zeros((n, 0))
    return jnp.asarray(np.concatenate([x, c], 1), jnp.float32)


def _build(combo, key=jax.random.key(0)):
    s = combo["structure"]
    return build_vae(data_dim=D, latent_dim=2, key=key, likelihood=combo["likelihood"], network=combo["network"],
                     hidden=(8,), image_shape=SHAPE, channels=2, levels=LEVELS, prior=combo["prior"],
                     posterior=combo["posterior"], n_components=2, pseudo_inputs=_rows(combo, 3, seed=1),
                     n_flows=1, context_dim=2, noise_dim=2, categories=3,
                     top_latent_dim=2 if s in ("hvae", "ladder") else None, ladder=s == "ladder",
                     latent="categorical" if s == "categorical" else "gaussian", semi_supervised=s == "m2",
                     condition_dim=C if combo["conditional"] else 0)


def _refusals(combo) -> list[str]:
    """The rules that refuse a combination (a word of each one's message), each a matter of maths."""
    s, prior, posterior = combo["structure"], combo["prior"], combo["posterior"]
    rules = []
    if s == "categorical" and (prior, posterior) != ("normal", "gaussian"):
        rules.append("categorical latents come with their own prior and posterior")  # the uniform/Gumbel pair
    if s == "m2" and not combo["conditional"]:
        rules.append("semi-supervised model needs condition_dim = the number of classes")  # its label is c
    if s in ("hvae", "ladder") and posterior != "gaussian":
        rules.append("infers z1 and z2 with its own posterior")  # a two-layer posterior is the posterior part
    if prior == "vamp" and posterior != "gaussian":
        rules.append("VampPrior is a mixture of the posterior's densities")  # needs q(z | u) in closed form
    if s == "m2" and posterior == "implicit":  # the one refusal that is wiring, not maths (see its message)
        rules.append("an implicit posterior needs the adversarial objective, which it does not wrap")
    if prior == "vamp" and s in ("hvae", "ladder"):
        rules.append("VampPrior on the top layer needs q\\(z2 \\| u\\) in closed form")
    return rules


def _built_or_refused(combo):
    """(the model's shapes, None) or (None, the refusal); shapes only: nothing is allocated."""
    try:
        return eqx.filter_eval_shape(_build, combo), None
    except BayesgenError as err:
        return None, str(err)


def test_only_the_mathematical_rules_refuse_a_combination():
    outcomes = [(combo, *_built_or_refused(combo)) for combo in COMBOS]
    for combo, model, message in outcomes:
        rules = _refusals(combo)
        if not rules:
            assert message is None, (combo, message)
        else:
            assert message is not None and any(re.search(rule, message) for rule in rules), (combo, rules, message)
            assert "\n" not in message
    allowed = sum(model is not None for _, model, _ in outcomes)
    assert allowed == len(ALLOWED) >= 400, allowed  # the parts compose: 432 of the 1440 combinations build


def _all_pairs(combos):
    """A greedy subset of ``combos`` in which every pair of factor values that occurs in
    ``combos`` occurs at least once."""
    def pairs(combo):
        return {((a, combo[a]), (b, combo[b])) for a, b in itertools.combinations(FACTORS, 2)}

    uncovered, chosen = set().union(*(pairs(c) for c in combos)), []
    while uncovered:
        best = max(combos, key=lambda c: len(pairs(c) & uncovered))
        chosen.append(best)
        uncovered -= pairs(best)
    return chosen


ALLOWED = [combo for combo in COMBOS if not _refusals(combo)]  # the test above checks it is build_vae's set
COVERING = _all_pairs(ALLOWED)


def _objective(combo):
    objective = Adversarial() if combo["posterior"] == "implicit" else ELBO(kl="mc")
    return SemiSupervised(inner=objective, alpha=1.0) if combo["structure"] == "m2" else objective


@pytest.mark.parametrize("combo", COVERING, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_every_pair_of_parts_trains_scores_samples_and_checkpoints(combo, tmp_path):
    model, x, key = _build(combo), _rows(combo), jax.random.key(1)
    optimizer = make_optimizer(1e-3)
    state, static = init(model, optimizer, key, _objective(combo))
    step = jax.jit(make_step(static, _objective(combo), optimizer))
    (params, _), (loss, _, finite) = step((state.params, state.opt_state), x, key, jnp.int32(0))
    assert bool(finite) and np.isfinite(float(loss)), combo
    trained = eqx.combine(params, static)
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)),
                                                         jax.tree.leaves(params))]
    assert any(changed), combo  # the step moved the parameters

    log_px = log_marginal_likelihood(trained, x, key, n_samples=4)
    assert log_px.shape == (len(x),) and np.all(np.isfinite(log_px)), combo
    condition = {"condition": jax.nn.one_hot(jnp.arange(2) % C, C)} if combo["conditional"] else {}
    _, samples = trained.sample(key, 2, **condition)
    assert samples.shape == (2, D) and np.all(np.isfinite(np.asarray(samples))), combo

    save_checkpoint(tmp_path / "m.ckpt", trained)
    restored, _ = load_checkpoint(tmp_path / "m.ckpt", model)  # into the untrained model: same structure
    arrays = [jax.tree.leaves(eqx.filter(m, eqx.is_array)) for m in (trained, restored)]
    for a, b in zip(*arrays):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_covering_design_covers_every_value():
    for factor, values in FACTORS.items():
        assert {c[factor] for c in COVERING} == set(values), factor
    assert len(COVERING) <= 30, len(COVERING)
