"""What a model variant is: a named composition of the parts with its own typed options.

A variant (``vae``, ``mog-vae``, ``hvae``, ...) is a :class:`Variant` subclass in one file of
this package. It owns

* its **options**, a frozen dataclass whose fields carry their help text
  (``field(default=..., metadata={"help": ...})``): the CLI derives one flag per field
  (``n_components`` -> ``--n-components``), the TOML ``[model.options]`` table takes the same
  keys, and ``config.json`` records them;
* their **validation**, once, in model terms (:meth:`Variant.check`);
* the **parts** it changes relative to the VAE (:meth:`Variant.parts`, keyword arguments of
  :func:`bayesgen.lvm.presets.build_vae`, or a part of its own swapped in by :meth:`Variant.build`);
* its **training defaults**: the KL warm-up and the objective (:meth:`Variant.kl_warmup`,
  :meth:`Variant.objective`).

The run layer (:mod:`bayesgen.runs`) and the config ask the variant; they hold no per-variant
branches. See ``docs/tutorials/02_custom_variant.py`` for a new variant in one file.

A variant module imports the model parts inside the methods that build them: the registry is
read by ``bayesgen --help`` and the CLI's parser, which must answer without importing JAX.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from bayesgen._errors import require


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a variant that has none."""


def option(default, help: str, metavar: str | None = None):
    """A field of a variant's options with its help text (shown by ``bayesgen train --help``)."""
    return dataclasses.field(default=default, metadata={"help": help, "metavar": metavar})


def require_positive(options, *names: str) -> None:
    """Each named option is an integer >= 1 (the check most sizes need)."""
    for name in names:
        value = getattr(options, name)
        require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"{name} must be a whole number >= 1, got {value!r}")


class Variant:
    """A named model variant. Subclasses set the class attributes and override what they change.

    Attributes:
        name: how users pick it (``model.name``; ``bayesgen train --model NAME``).
        summary: one line for ``--help`` and the docs.
        Options: its options dataclass (frozen; every field made with :func:`option`).
        conditional: it reads class labels as a condition: rows ``[x, one_hot(y)]`` (a variant
            whose options decide it overrides :meth:`is_conditional`).
        semi_supervised: it trains on partly labelled data (``labels_per_class`` applies).
        continuous_latent: its codes are continuous (a decoded manifold can be drawn).
        abstract_build: its model can be built under ``jax.eval_shape`` (shapes only), so that a
            run is opened without running the initialisers only to overwrite their values; false
            for a part that keeps a function closed over its initial values (flowjax's MADE).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    conditional: ClassVar[bool] = False
    semi_supervised: ClassVar[bool] = False
    continuous_latent: ClassVar[bool] = True
    abstract_build: ClassVar[bool] = True

    def options(self, values=None):
        """Its options from a dict (or an instance, or None: the defaults), checked."""
        if isinstance(values, self.Options):
            options = values
        else:
            values = dataclasses.asdict(values) if dataclasses.is_dataclass(values) else dict(values or {})
            known = [f.name for f in dataclasses.fields(self.Options)]
            unknown = sorted(set(values) - set(known))
            require(not unknown, f"the {self.name} model has no option(s) {', '.join(unknown)}; "
                                 + (f"its options are {', '.join(known)}" if known else "it has no options"))
            _check_types(self, values)
            options = self.Options(**values)
        self.check(options)
        return options

    def check(self, options) -> None:
        """Raise BayesgenError naming a bad option and the fix (in model terms). Default: nothing to check."""

    def is_conditional(self, options) -> bool:
        """Whether the model reads class labels as a condition (rows ``[x, one_hot(y)]``)."""
        return self.conditional

    def check_training(self, train) -> None:
        """Raise BayesgenError if the training settings (a TrainConfig) do not suit this variant."""

    def parts(self, options, *, data_dim: int, condition_dim: int, n_train: int, train_x=None) -> dict:
        """Keyword arguments of :func:`~bayesgen.lvm.presets.build_vae` for the parts this variant
        changes. ``train_x`` (rows of the training split) is None when only a skeleton is built
        (to load a checkpoint into); parts that start from data must then give same-shaped zeros."""
        return {}

    def build(self, options, **parts):
        """The model from ``build_vae``'s keyword arguments (the run's settings and :meth:`parts`).
        A variant with a part ``build_vae`` does not know builds with it and swaps its part in
        (``eqx.tree_at(lambda m: m.prior, model, MyPrior(...))``)."""
        from bayesgen.lvm.presets import build_vae  # the parts are imported where used: see the module's end

        return build_vae(**parts)

    def kl_warmup(self, train) -> int:
        """Its default epochs of KL warm-up (``kl_warmup = None``): none."""
        return 0

    def objective(self, options, base, train, n_train: int):
        """The objective it trains with, given its options and the configured one (``base``): that one."""
        return base


def type_name(field: dataclasses.Field) -> str:
    """The base type of an option field as a name (``int``, ``float``, ``str``, ``bool``), whether
    its annotation is a class or, under ``from __future__ import annotations``, a string."""
    return field.type.__name__ if isinstance(field.type, type) else str(field.type).split(" |")[0]


def _check_types(variant: Variant, values: dict) -> None:
    """Each value's type against its field's annotation (TOML and flags can carry anything)."""
    kinds = {"int": int, "float": (int, float), "str": str, "bool": bool}
    for f in dataclasses.fields(variant.Options):
        if f.name not in values:
            continue
        value, base = values[f.name], type_name(f)
        if value is None and "None" in str(f.type):
            continue
        ok = isinstance(value, kinds[base]) and (base == "bool" or not isinstance(value, bool))
        require(ok, f"the {variant.name} model's option {f.name} must be {base}, got {value!r}")
        require(base not in ("int", "float") or (math.isfinite(value) and abs(value) < 2**31),
                f"the {variant.name} model's option {f.name} = {value!r} is out of range: "
                "numbers must be finite and within +-2**31")
