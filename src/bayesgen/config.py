"""The resolved configuration of a run: data, model, training and evaluation settings.

A config is plain data (dataclasses of numbers and strings), written to ``config.json``
in the run directory and read back without evaluating anything. It can come from a TOML
file with the sections ``[data]``, ``[model]``, ``[train]``, ``[eval]``; command-line
flags override it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bayesgen._errors import BayesgenError, require
from bayesgen.lvm.evaluation import MAX_IMPORTANCE
from bayesgen.lvm.networks import ACTIVATIONS
from bayesgen.lvm.objectives import ELBO, IWAE, Renyi
from bayesgen.lvm.presets import LIKELIHOODS, NETWORKS
from bayesgen.train.driver import check_fit_options
from bayesgen.train.loop import BINARIZE, make_optimizer
from bayesgen.variants import get as get_variant
from bayesgen.variants import variants

OBJECTIVES = ("elbo", "iwae", "renyi")


@dataclass
class DataConfig:
    source: str = "digits"            # "digits" or a path to .npy/.npz/.csv/.mat/.amat/IDX/PNG folder
    train: str | None = None          # a given split, used as is instead of splitting `source`: the train
    valid: str | None = None          # and test files (valid optional: else valid_fraction of train)
    test: str | None = None
    label_column: str = "label"       # the CSV column holding class labels ("": none; the rest are features)
    image_shape: list[int] | None = None
    scale: bool = True                # scale to [0, 1] for bernoulli/gaussian likelihoods
    binarize: str = "auto"            # auto | none | static | dynamic (auto: dynamic for a bernoulli
                                      # likelihood on non-binary data, else none; resolved in config.json)
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    labels_per_class: int | None = None  # m2: keep this many training labels per class, hide the rest


@dataclass
class ModelConfig:
    name: str = "vae"                 # a variant (bayesgen.variants): vae, mog-vae, vamp-vae, planar-vae, iaf-vae,
                                      # hvae, ladder-vae, cvae, gumbel-vae, m2, avb-vae
    likelihood: str = "bernoulli"     # bernoulli | gaussian | gaussian-learned | categorical
    latent_dim: int = 2
    network: str = "mlp"              # mlp | conv | resnet
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    activation: str = "relu"
    channels: int = 32                # conv / resnet networks: width at half resolution (twice that at a quarter)
    depth: int = 1                    # resnet: residual blocks per resolution
    sigma: float = 0.1                # fixed-sigma gaussian likelihood
    levels: int | None = None         # categorical likelihood; default: the data set's levels
    options: object = None            # the variant's own settings: its Options dataclass (bayesgen.variants),
                                      # a table [model.options] in TOML and config.json; None: its defaults


@dataclass
class TrainConfig:
    objective: str = "elbo"           # elbo | iwae | renyi
    kl: str = "auto"                  # auto | analytic | mc (auto: analytic where a closed form exists)
    beta: float = 1.0
    kl_warmup: int | None = None      # elbo: epochs of linear KL warm-up from 0 to beta (0: none; None: the
                                      # model's default: 0 except for ladder-vae, see variants/ladder.py)
    free_bits: float = 0.0            # elbo: per-dimension KL floor in nats (0: none)
    alpha: float = 0.5                # renyi: VR-alpha (1: ELBO, 0: IWAE bound)
    classify_weight: float | None = None  # m2: weight of log q(y|x) on labelled rows (None: 0.1 x training rows)
    n_samples: int = 1                # samples per example (K for iwae and renyi)
    epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"     # constant | cosine | exponential
    patience: int | None = 10         # early stopping; None disables
    seed: int = 0
    devices: int | None = None        # data-parallel devices; None: as many as divide batch_size
                                      # (resolved in config.json)
    x64: bool = False                 # train and evaluate in float64


    def base_objective(self, warmup_steps: int = 0):
        """The bound this section describes (a variant may adapt it: see ``Variant.objective``);
        ``warmup_steps`` turns the KL warm-up's epochs into steps."""
        if self.objective == "iwae":
            return IWAE(n_samples=self.n_samples)
        if self.objective == "renyi":
            return Renyi(alpha=self.alpha, n_samples=self.n_samples)
        return ELBO(n_samples=self.n_samples, kl=self.kl, beta=self.beta, free_bits=self.free_bits,
                    warmup_steps=warmup_steps)


@dataclass
class EvalConfig:
    n_importance: int = 1000          # K for importance-sampled log p(x)
    chunk_size: int | None = None


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict, *, origin: str = "config", legacy: bool = False) -> "Config":
        """Build from nested dicts; unknown sections or keys are errors, not silently ignored.

        The model's options go in ``model["options"]``; the chosen variant's own option keys may
        also stand in ``model`` itself (``[model] n_components = 5``). ``legacy=True`` reads a
        ``config.json`` written before variants owned their options, which recorded every
        variant's options side by side in ``model``: the others' are dropped.
        """
        require(isinstance(raw, dict), f"{origin} must be a table of sections, got {type(raw).__name__}")
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(sections)
        require(not unknown, f"{origin} has unknown section(s) {sorted(unknown)}; allowed: {', '.join(sections)}")
        parts = {}
        for f in dataclasses.fields(cls):
            section_cls = f.default_factory().__class__
            values = raw.get(f.name, {})
            require(isinstance(values, dict), f"{origin} section [{f.name}] must be a table")
            if f.name == "model":
                values = _gather_options(values, origin, legacy)
            names = {g.name for g in dataclasses.fields(section_cls)}
            bad = set(values) - names
            guesses = [f"{key} -> {close[0]}" for key in sorted(bad)
                       if (close := difflib.get_close_matches(key, names, n=1, cutoff=0.6))]
            require(not bad,
                    f"{origin} section [{f.name}] has unknown key(s) {sorted(bad)}; "
                    + (f"did you mean {', '.join(guesses)}? " if guesses else "")
                    + f"allowed: {', '.join(sorted(names))}")
            parts[f.name] = section_cls(**values)
        return cls(**parts).validated()

    @classmethod
    def from_toml(cls, path) -> "Config":
        path = Path(path)
        require(not path.is_dir(), f"config file '{path}' is a directory; pass the TOML file itself")
        require(path.is_file(), f"config file '{path}' does not exist; check the path")
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise BayesgenError(f"config file '{path}' is not valid TOML: {err}") from None
        return cls.from_dict(raw, origin=f"config file '{path}'")

    def validated(self) -> "Config":
        """Check every value; raise BayesgenError naming the first bad one and the fix."""
        d, m, t, e = self.data, self.model, self.train, self.eval
        _typed(self)
        require(d.binarize in ("auto", *BINARIZE),
                f"unknown binarization '{d.binarize}'; choose one of auto, {', '.join(BINARIZE)}")
        require(0 <= d.valid_fraction < 1 and 0 < d.test_fraction < 1 and d.valid_fraction + d.test_fraction < 1,
                f"valid_fraction {d.valid_fraction} and test_fraction {d.test_fraction} "
                "must lie in [0, 1) and sum below 1")
        given = [f"{name}={value!r}" for name, value in (("train", d.train), ("valid", d.valid), ("test", d.test))
                 if value]
        require(bool(d.train) == bool(d.test) and (d.train or not d.valid),
                "a given split needs a train and a test file (the valid file is optional); "
                f"got only {', '.join(given)}")
        require(not d.train or d.source == DataConfig.source,
                f"give the data either as one source to split ({d.source!r}) or as train/valid/test files, not both")
        variant = get_variant(m.name)
        m.options = variant.options(m.options)
        require(m.likelihood in LIKELIHOODS,
                f"unknown likelihood '{m.likelihood}'; choose one of {', '.join(LIKELIHOODS)}")
        require(m.network in NETWORKS, f"unknown network '{m.network}'; choose one of {', '.join(NETWORKS)}")
        require(m.activation in ACTIVATIONS,
                f"unknown activation '{m.activation}'; choose one of {', '.join(ACTIVATIONS)}")
        require(m.latent_dim >= 1, f"latent_dim must be at least 1, got {m.latent_dim}; pass e.g. latent_dim=2")
        require(len(m.hidden) >= 1 and all(h >= 1 for h in m.hidden),
                f"hidden sizes must be positive, got {m.hidden}; pass e.g. hidden=256,128")
        require(m.channels >= 1, f"channels must be positive, got {m.channels}")
        require(m.depth >= 1, f"depth must be at least 1 residual block per resolution, got {m.depth}")
        require(m.sigma > 0 and math.isfinite(m.sigma), f"sigma must be a positive number, got {m.sigma}")
        require(m.levels is None or m.levels >= 2, f"levels must be at least 2, got {m.levels}")
        require(t.objective in OBJECTIVES, f"unknown objective '{t.objective}'; choose one of {', '.join(OBJECTIVES)}")
        require(t.kl in ("auto", "analytic", "mc"), f"kl must be 'auto', 'analytic' or 'mc', got '{t.kl}'")
        # the training values' owners check them, in their words: the bound, the optimiser, fit
        dataclasses.replace(t, kl="analytic" if t.kl == "auto" else t.kl).base_objective()
        make_optimizer(t.learning_rate, schedule=t.lr_schedule)
        check_fit_options(epochs=t.epochs, batch_size=t.batch_size, patience=t.patience)
        require(t.kl_warmup is None or t.kl_warmup >= 0,
                f"the KL warm-up must be a whole number of epochs >= 0, got {t.kl_warmup}")
        require(t.objective == "elbo" or (not t.kl_warmup and t.free_bits == 0 and t.beta == 1),
                "beta, kl_warmup and free_bits weight the ELBO's KL term; "
                f"they do not apply to objective='{t.objective}'")
        variant.check_training(t)
        require(t.classify_weight is None or (t.classify_weight >= 0 and math.isfinite(t.classify_weight)),
                f"the classification weight must be a number >= 0, got {t.classify_weight}")
        require(d.labels_per_class is None or d.labels_per_class >= 1,
                f"labels_per_class must be at least 1, got {d.labels_per_class}")
        require(d.labels_per_class is None or variant.semi_supervised,
                f"labels_per_class hides training labels for a semi-supervised model (model='m2'), not for {m.name}")
        require(t.devices is None or t.devices >= 1,
                f"devices must be at least 1, got {t.devices}; pass e.g. devices=4")
        require(1 <= e.n_importance <= MAX_IMPORTANCE,
                "the number of importance samples K must be "
                f"at least 1 and at most {MAX_IMPORTANCE:,}, got {e.n_importance}")
        require(e.chunk_size is None or e.chunk_size >= 1, f"chunk_size must be at least 1, got {e.chunk_size}")
        return self


def _typed(config: Config) -> None:
    """Check each value's type against its annotation (TOML and flags can carry anything)."""
    kinds = {"int": int, "float": (int, float), "str": str, "bool": bool}
    for section in dataclasses.fields(config):
        obj = getattr(config, section.name)
        for f in dataclasses.fields(obj):
            if f.name == "options":  # the variant checks its own options
                continue
            value, ann = getattr(obj, f.name), str(f.type)
            if value is None and "None" in ann:
                continue
            base = ann.split(" |")[0]
            if base.startswith("list[int]"):
                ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool)
                                                              for v in value)
                numbers = list(value) if ok else []
            else:
                ok = isinstance(value, kinds[base]) and (base == "bool" or not isinstance(value, bool))
                numbers = [value] if ok and base in ("int", "float") else []
            require(ok,
                    f"[{section.name}] {f.name} "
                    f"must be {base.replace('list[int]', 'a list of integers')}, got {value!r}")
            require(all(math.isfinite(v) and abs(v) < 2**31 for v in numbers),
                    f"[{section.name}] {f.name} = {value!r} is out of range: numbers must be finite and within +-2**31")


def _gather_options(values: dict, origin: str, legacy: bool) -> dict:
    """The model section with the variant's options gathered into ``options`` (a dict)."""
    values = dict(values)
    name = values.get("name", ModelConfig.name)
    require(isinstance(name, str), f"[model] name must be str, got {name!r}")
    variant = get_variant(name)
    options = values.pop("options", None)
    if dataclasses.is_dataclass(options):
        options = dataclasses.asdict(options)
    options = {} if options is None else options
    require(isinstance(options, dict), f"{origin} section [model.options] must be a table")
    options = dict(options)
    own = {f.name for f in dataclasses.fields(variant.Options)}
    common = {f.name for f in dataclasses.fields(ModelConfig)}
    owners: dict[str, list[str]] = {}
    for other in variants().values():
        for f in dataclasses.fields(other.Options):
            owners.setdefault(f.name, []).append(other.name)
    for key in [k for k in values if k not in common and k in owners]:
        value = values.pop(key)
        if key in own:  # the shorthand [model] n_components = 5
            require(key not in options, f"{origin} gives {key} twice, in [model] and in [model.options]; keep one")
            options[key] = value
        elif not legacy:
            options[key] = value  # refused below, naming the variants that have it
    for key in options:
        require(key in own or key not in owners,
                f"{origin}: {key} is an option of {', '.join(owners.get(key, []))}, not of the {name} model; "
                f"drop it or choose one of those models")
    values["options"] = options
    return values
