"""Ready-made compositions of the parts: the VAE (Kingma & Welling, 2014) and its family.

Each variant swaps one part: ``prior`` ("normal", "mog", "vamp"), ``posterior``
("gaussian", "planar", "iaf") or adds a second stochastic layer (``top_latent_dim``).
Objectives (beta-VAE, IWAE) are chosen separately, in :mod:`bayesgen.lvm.objectives`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bayesgen._errors import require
from bayesgen.lvm import likelihoods as lik
from bayesgen.lvm.adversarial import ImplicitPosterior
from bayesgen.lvm.discrete import GumbelSoftmaxPosterior, TemperatureSchedule, UniformCategorical
from bayesgen.lvm.flows import FlowPosterior
from bayesgen.lvm.hierarchical import BottomUpPosterior, FirstLayer, HierarchicalPrior, LadderPosterior, LadderPrior
from bayesgen.lvm.model import LatentVariableModel
from bayesgen.lvm.networks import MLP, ConvDecoder, ConvEncoder, ResNetDecoder, ResNetEncoder
from bayesgen.lvm.posteriors import DiagonalGaussian
from bayesgen.lvm.priors import MixtureOfGaussians, StandardNormal, VampPrior
from bayesgen.lvm.semisupervised import SemiSupervisedPosterior

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned", "categorical")
NETWORKS = ("mlp", "conv", "resnet")
IMAGE_ENCODERS = {"conv": ConvEncoder, "resnet": ResNetEncoder}
IMAGE_DECODERS = {"conv": ConvDecoder, "resnet": ResNetDecoder}
PRIORS = ("normal", "mog", "vamp")
POSTERIORS = ("gaussian", "planar", "iaf", "implicit")
LATENTS = ("gaussian", "categorical")
# model name -> the parts it changes relative to the VAE (see docs/architecture.md)
MODELS = {
    "vae": {},
    "mog-vae": {"prior": "mog"},
    "vamp-vae": {"prior": "vamp"},
    "planar-vae": {"posterior": "planar"},
    "iaf-vae": {"posterior": "iaf"},
    "hvae": {"hierarchical": True},
    "cvae": {"conditional": True},
    "gumbel-vae": {"latent": "categorical"},
    "m2": {"conditional": True, "semi_supervised": True},
    "ladder-vae": {"hierarchical": True, "ladder": True},
    "avb-vae": {"posterior": "implicit"},
}


MARGINAL_LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned")  # those output_bias can start at the data


def output_bias(data_mean, likelihood: str = "bernoulli") -> jax.Array:
    """The decoder output bias under which p(x | z) starts at the data's per-feature marginal:
    logit(mean) for ``"bernoulli"`` (the mean clipped to [0.001, 0.999]), the mean itself for
    ``"gaussian"`` / ``"gaussian-learned"``.

    Why: from a zero bias (every pixel p = 0.5) the first steps' largest gradient is "learn the
    mean image", and the encoder takes part: on binarized MNIST (784-200-200-50 tanh, Adam
    1e-3) it moves every code to one shared point (|mu| ~ 3.5, log sigma^2 ~ -3) within ~20
    steps, saturating its tanh units, after which it gets almost no gradient (~1e-3 of its
    first-step norm). A VAE's KL towards N(0, I) pulls the codes back and it recovers
    (~300 steps); a VampPrior's KL is blind to a shift shared by all codes (the prior is the
    encoder too), so that model stays on the plateau (issue 3). Starting at the marginal removes
    the transient; Burda et al. (2016) initialise their decoders this way.

    Example:
        >>> model = build_vae(data_dim=784, latent_dim=50, key=key, data_mean=x_train.mean(0))
    """
    mean = np.asarray(data_mean, np.float32)  # checked on the host: build_vae may run under eval_shape
    require(mean.ndim == 1, f"data_mean must be a vector with one value per feature, got shape {mean.shape}")
    if likelihood == "bernoulli":
        require(bool(np.all((mean >= 0) & (mean <= 1))), "a bernoulli likelihood's data_mean must lie in [0, 1]")
        p = np.clip(mean, 1e-3, 1 - 1e-3)
        return jnp.asarray(np.log(p) - np.log1p(-p))
    require(likelihood in MARGINAL_LIKELIHOODS,
            f"output_bias knows the bernoulli and gaussian likelihoods, not '{likelihood}'")
    return jnp.asarray(mean)


def build_vae(*, data_dim: int, latent_dim: int, key, likelihood: str = "bernoulli", network: str = "mlp",
              hidden: Sequence[int] = (256, 128), activation: str = "relu", image_shape=None,
              levels: int | None = None, sigma: float = 0.1, channels: int = 32, depth: int = 1, prior: str = "normal",
              posterior: str = "gaussian", n_components: int = 10, pseudo_inputs=None, n_flows: int = 4,
              context_dim: int = 16, top_latent_dim: int | None = None, condition_dim: int = 0,
              latent: str = "gaussian", categories: int = 10,
              temperature: TemperatureSchedule = TemperatureSchedule(),
              semi_supervised: bool = False, ladder: bool = False, noise_dim: int | None = None,
              data_mean=None) -> LatentVariableModel:
    """A VAE: standard-normal prior, a decoder likelihood and a diagonal-Gaussian encoder.

    ``hidden`` lists the encoder's hidden widths; the decoder mirrors them. ``network="conv"``
    (two stride-2 convolutions of ``channels`` and ``2*channels``) and ``network="resnet"``
    (the same resolutions with ``depth`` residual blocks at each) need ``image_shape`` ((H, W)
    or (C, H, W)); a condition or an implicit posterior's noise joins their dense layers, and
    ``hidden`` sizes only the MLPs the other parts keep (flows' context nets, the hierarchy's
    top layers, the discriminator, the classifier). Variants: ``prior="mog"`` (``n_components``
    learned Gaussians), ``prior="vamp"`` (``pseudo_inputs`` (K, D), e.g. K training rows),
    ``posterior="planar"|"iaf"`` (``n_flows`` steps conditioned on a ``context_dim`` encoder
    output), ``top_latent_dim=L2`` (a second stochastic layer z2 above z = z1).
    ``condition_dim=C`` makes it a conditional VAE over rows ``[x, c]``: the encoder reads
    the whole row (q(z | x, c)) and the decoder ``[z, c]`` (p(x | z, c)).
    ``latent="categorical"`` makes z ``latent_dim`` one-hot codes of ``categories`` classes
    (uniform prior, Gumbel-softmax posterior annealed by ``temperature``).
    ``semi_supervised=True`` (with ``condition_dim`` = the number of classes) adds a
    classifier q(y | x) beside the posterior: the M2 model, trained with
    :class:`~bayesgen.lvm.semisupervised.SemiSupervised`. ``ladder=True`` (with
    ``top_latent_dim``) infers the two layers top-down (ladder VAE) instead of bottom-up.
    ``posterior="implicit"`` is adversarial variational Bayes: the encoder reads ``[x, eps]``
    (``noise_dim`` Gaussian noise inputs, at least ``latent_dim``; default ``latent_dim``) and a
    discriminator network estimates the KL's density ratio; train it with
    :class:`~bayesgen.lvm.adversarial.Adversarial`.
    ``data_mean`` ``(D,)`` (the training data's per-feature mean) starts the decoder's output
    bias at the data's marginal (see :func:`output_bias`), as Burda et al. (2016) do; an MLP
    decoder with a bernoulli or gaussian likelihood only.

    Example:
        >>> model = build_vae(data_dim=64, latent_dim=2, likelihood="categorical", levels=17,
        ...                   key=jax.random.key(0))
    """
    require(data_dim >= 1, f"data_dim must be at least 1, got {data_dim}")
    require(isinstance(latent_dim, int) and latent_dim >= 1,
            f"latent_dim must be a positive integer, got {latent_dim}; pass e.g. latent_dim=2")
    require(likelihood in LIKELIHOODS, f"unknown likelihood '{likelihood}'; choose one of {', '.join(LIKELIHOODS)}")
    require(network in NETWORKS, f"unknown network '{network}'; choose one of {', '.join(NETWORKS)}")
    require(all(isinstance(h, int) and h >= 1 for h in hidden),
            f"hidden sizes must be positive integers, got {list(hidden)}")
    if likelihood == "categorical":
        require(levels is not None and levels >= 2,
                f"a categorical likelihood needs levels >= 2, got {levels}; pass levels=N")
    require(prior in PRIORS, f"unknown prior '{prior}'; choose one of {', '.join(PRIORS)}")
    require(posterior in POSTERIORS, f"unknown posterior '{posterior}'; choose one of {', '.join(POSTERIORS)}")
    require(top_latent_dim is None or (isinstance(top_latent_dim, int) and top_latent_dim >= 1),
            f"top_latent_dim must be a positive integer, got {top_latent_dim}")
    require(top_latent_dim is None or posterior == "gaussian",
            f"a two-layer model infers z1 and z2 with its own posterior (bottom-up or ladder), which takes the "
            f"place of posterior='{posterior}'; drop the posterior option or top_latent_dim")
    require(prior != "vamp" or posterior == "gaussian",
            f"a VampPrior is a mixture of the posterior's densities, which posterior '{posterior}' has no closed form "
            "for; use it with posterior='gaussian' or choose another prior")
    require(isinstance(condition_dim, int) and condition_dim >= 0,
            f"condition_dim must be an integer >= 0, got {condition_dim}")
    require(latent in LATENTS, f"unknown latent type '{latent}'; choose one of {', '.join(LATENTS)}")
    discrete = latent == "categorical"
    require(not discrete or (prior == "normal" and posterior == "gaussian" and top_latent_dim is None),
            "categorical latents come with their own prior and posterior; drop the prior, flow and hierarchy options")
    require(not discrete or (isinstance(categories, int) and categories >= 2),
            f"categorical latents need at least 2 categories, got {categories}; pass e.g. categories=10")
    if discrete:
        temperature = TemperatureSchedule(*temperature).check()
    code_dim = latent_dim * categories if discrete else latent_dim  # the width of the latent vector
    implicit = posterior == "implicit"
    noise_dim = latent_dim if noise_dim is None else noise_dim
    require(not implicit or (isinstance(noise_dim, int) and noise_dim >= latent_dim),
            f"an implicit posterior needs at least as many noise inputs as latent dimensions ({latent_dim}), got "
            f"noise_dim={noise_dim}: with fewer, q(z|x) lies on a lower-dimensional surface, has no density, and its "
            "KL from the prior is infinite")
    require(not ladder or top_latent_dim is not None, "a ladder VAE needs two stochastic layers: pass top_latent_dim")
    require(not semi_supervised or not implicit,
            "a semi-supervised model trains its posterior through the ELBO-type objective it wraps, and an implicit "
            "posterior needs the adversarial objective, which it does not wrap (not built); drop one of them")
    require(not semi_supervised or condition_dim >= 2,
            f"a semi-supervised model needs condition_dim = the number of classes (>= 2), got {condition_dim}")
    n_params = levels if likelihood == "categorical" else 1
    key_enc, key_dec, key_prior, key_post = jax.random.split(key, 4)
    flow = posterior in ("planar", "iaf")
    enc_out = (code_dim if discrete else latent_dim if implicit
               else 2 * latent_dim + (context_dim if flow or ladder else 0))
    require(data_mean is None or (network == "mlp" and likelihood in MARGINAL_LIKELIHOODS),
            f"data_mean initialises an MLP decoder's output bias for a bernoulli or gaussian likelihood, not a "
            f"{network} decoder with a {likelihood} likelihood; drop data_mean")
    if network == "mlp":
        encoder = MLP(data_dim + condition_dim + (noise_dim if implicit else 0),
                      enc_out, hidden, activation, key=key_enc)
        decoder = MLP(code_dim + condition_dim, n_params * data_dim, tuple(reversed(hidden)), activation, key=key_dec)
        if data_mean is not None:
            bias = output_bias(data_mean, likelihood)
            require(bias.shape == (data_dim,),
                    f"data_mean must have one value per feature, shape ({data_dim},), got {bias.shape}")
            decoder = eqx.tree_at(lambda d: d.layers[-1].bias, decoder, bias)
    else:
        require(image_shape is not None,
                f"a {network} network needs image data; this data set has no image shape, so use the MLP network")
        require(math.prod(image_shape) == data_dim,
                f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} values "
                f"but the data have {data_dim} features")
        require(isinstance(channels, int) and channels >= 1, f"an image network needs channels >= 1, got {channels}")
        sizes = dict(depth=depth) if network == "resnet" else {}
        encoder = IMAGE_ENCODERS[network](image_shape, enc_out, channels, activation,
                                          extra_inputs=condition_dim + (noise_dim if implicit else 0),
                                          key=key_enc, **sizes)
        decoder = IMAGE_DECODERS[network](code_dim + condition_dim, image_shape, n_params, channels, activation,
                                          key=key_dec, **sizes)
    if top_latent_dim is not None:
        decoder = FirstLayer(decoder, latent_dim, condition_dim)
    if likelihood == "bernoulli":
        output = lik.Bernoulli(decoder=decoder, data_dim=data_dim)
    elif likelihood == "gaussian":
        output = lik.Gaussian(decoder=decoder, data_dim=data_dim, sigma=sigma)
    elif likelihood == "gaussian-learned":
        # softplus^-1(0.1): start every sigma_d near 0.1.
        output = lik.LearnedGaussian(
            decoder=decoder, raw_sigma=jnp.full((data_dim,), jnp.log(jnp.expm1(0.1))), data_dim=data_dim)
    else:
        output = lik.Categorical(decoder=decoder, data_dim=data_dim, levels=levels)
    top = None  # p(z2) of a two-layer model: N(0, I) unless another prior is asked for (the stack checks it)
    if top_latent_dim is not None and prior == "mog":
        top = MixtureOfGaussians(top_latent_dim, n_components, key=jax.random.fold_in(key, 5))
    elif top_latent_dim is not None and prior == "vamp":
        require(pseudo_inputs is not None, "a VampPrior needs pseudo_inputs (K, D), e.g. K training examples")
        top = VampPrior(latent_dim=top_latent_dim, pseudo_inputs=jnp.asarray(pseudo_inputs, jnp.float32))
    if ladder:
        sizes, width = (latent_dim, top_latent_dim), (max(hidden[-1] // 2, 8),)
        return LatentVariableModel(
            prior=LadderPrior(sizes, top), likelihood=output,
            posterior=LadderPosterior(encoder, MLP(context_dim, 2 * top_latent_dim, width, activation, key=key_post),
                                      MLP(top_latent_dim, 2 * latent_dim, width, activation, key=key_prior), sizes,
                                      activation),
            condition_dim=condition_dim)
    if top_latent_dim is not None:
        sizes = (latent_dim, top_latent_dim)
        return LatentVariableModel(
            prior=HierarchicalPrior(sizes, hidden=(max(hidden[-1] // 2, 8),), activation=activation, key=key_prior,
                                    top=top),
            likelihood=output,
            posterior=BottomUpPosterior(encoder, MLP(latent_dim, 2 * top_latent_dim, (max(hidden[-1] // 2, 8),),
                                                     activation, key=key_post), sizes),
            condition_dim=condition_dim)
    if discrete:
        return LatentVariableModel(
            prior=UniformCategorical(n_variables=latent_dim, n_classes=categories, schedule=temperature),
            likelihood=output,
            posterior=GumbelSoftmaxPosterior(encoder=encoder, n_variables=latent_dim, n_classes=categories,
                                             schedule=temperature),
            condition_dim=condition_dim)
    if prior == "mog":
        p = MixtureOfGaussians(latent_dim, n_components, key=key_prior)
    elif prior == "vamp":
        require(pseudo_inputs is not None, "a VampPrior needs pseudo_inputs (K, D), e.g. K training examples")
        p = VampPrior(latent_dim=latent_dim, pseudo_inputs=jnp.asarray(pseudo_inputs, jnp.float32))
    else:
        p = StandardNormal(latent_dim=latent_dim)
    if implicit:
        discriminator = MLP(data_dim + condition_dim + latent_dim, 1, hidden, activation, key=key_post)
        q = ImplicitPosterior(encoder=encoder, discriminator=discriminator, latent_dim=latent_dim, noise_dim=noise_dim)
    elif flow:
        q = FlowPosterior.build(encoder, latent_dim=latent_dim, context_dim=context_dim, kind=posterior,
                                n_flows=n_flows, key=key_post)
    else:
        q = DiagonalGaussian(encoder=encoder, latent_dim=latent_dim)
    if semi_supervised:
        q = SemiSupervisedPosterior(q, MLP(data_dim, condition_dim, hidden, activation, key=jax.random.fold_in(key, 4)))
    return LatentVariableModel(prior=p, likelihood=output, posterior=q, condition_dim=condition_dim)
