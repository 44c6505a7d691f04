"""The model variants by name: every :class:`Variant` defined in a module of this package,
those installed under the ``bayesgen.variants`` entry-point group, and those passed to
:func:`register`.

Adding a built-in variant is one new file here (found by :func:`names`); a variant in another
package registers itself with :func:`register`, or, to reach the CLI, declares an entry point::

    [project.entry-points."bayesgen.variants"]
    student-vae = "mypackage.variants:StudentVAE"
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil

from bayesgen._errors import require
from bayesgen.variants.base import NoOptions, Variant, option, require_positive, type_name

__all__ = ["NoOptions", "Variant", "get", "names", "option", "register", "require_positive", "type_name", "variants"]

_REGISTRY: dict[str, Variant] = {}
_LOADED = False


def register(variant: Variant | type) -> Variant:
    """Make a variant (an instance or a :class:`Variant` subclass) known by its name; returns it.

    Example:
        >>> register(StudentVAE)           # then Config(model=ModelConfig(name="student-vae"))
    """
    if isinstance(variant, type):
        variant = variant()
    require(isinstance(variant, Variant), f"a variant must be a bayesgen.variants.Variant, got {variant!r}")
    require(isinstance(getattr(variant, "name", None), str) and variant.name,
            f"{type(variant).__name__} needs a name (a class attribute)")
    _load()
    known = _REGISTRY.get(variant.name)
    require(known is None or type(known) is type(variant),
            f"a variant named '{variant.name}' exists already ({type(known).__name__}); choose another name")
    _REGISTRY[variant.name] = variant
    return variant


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in pkgutil.iter_modules(__path__):
        if module.name == "base" or module.name.startswith("_"):
            continue
        for value in vars(importlib.import_module(f"{__name__}.{module.name}")).values():
            if isinstance(value, type) and issubclass(value, Variant) and "name" in vars(value):
                _REGISTRY.setdefault(value.name, value())
    for entry in importlib.metadata.entry_points(group="bayesgen.variants"):
        register(entry.load())


def variants() -> dict[str, Variant]:
    """Every known variant by name, the plain ``vae`` first, then by name."""
    _load()
    return dict(sorted(_REGISTRY.items(), key=lambda item: (item[0] != "vae", item[0])))


def names() -> tuple[str, ...]:
    return tuple(variants())


def get(name: str) -> Variant:
    """The variant called ``name``; an unknown name is an error that lists the known ones."""
    known = variants()
    require(name in known, f"unknown model '{name}'; available: {', '.join(known)}")
    return known[name]
