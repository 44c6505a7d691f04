"""The package's layers, checked on its source: no import cycles, none hidden inside functions,
no reaching into another package's private modules, and ``train/`` below ``lvm/``.

A cycle is a design question (move the shared piece down a layer), so imports made inside
functions count as edges too: that is where cycles hide. Imports under ``if TYPE_CHECKING:``
do not run and do not count.
"""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# The only imports allowed inside functions, by module (prefix), each with its reason.
LAZY = {
    "importlib": "bayesgen.__getattr__ loads bayesgen.bayes on first use; tracking probes optional packages",
    "sklearn": "importing scikit-learn takes ~0.9 s: only the digits data set and text corpora need it",
    "scipy.stats": "~0.4 s to import: only ranks (R-hat, rank plots) and the posterior's mode (a KDE) need it",
    "matplotlib.image": "~0.2 s to import (PIL): only PNG folders and TensorBoard images need it",
    "scipy.io": "~0.3 s to import: only .mat files need it",
    "arviz": "optional: the bayes extra",
    "jaxoplanet": "optional: the transit extra",
    "mlflow": "optional: the track extra",
    "tensorboardX": "optional: the track extra",
}

# Modules that the command line's parser (and so `bayesgen --help`) imports: they import what a
# command runs (JAX, the models, matplotlib) inside the function that runs it, so that building
# the parser takes 0.3 s instead of 2.7 s (test_cli checks that it imports no JAX).
PARSER_MODULES = ("bayesgen.cli", "bayesgen.em.cli_", "bayesgen.em", "bayesgen.bayes.cli_bayes", "bayesgen.variants",
                  "bayesgen.report",
                  "bayesgen.__main__")  # sets its signal handlers before it imports the command line

# Imports across layers that are known and scheduled to go, with where they go: the test fails
# on any other, and on an entry that no longer holds (so this list only shrinks).
LAYER_DEBT = {
    ("bayesgen.train.loop", "bayesgen.lvm.objectives"): "the Objective protocol belongs below train/",
    ("bayesgen.train.streaming", "bayesgen.lvm.objectives"): "the Objective protocol belongs below train/",
    ("bayesgen.train.driver", "bayesgen.lvm.objectives"): "the default objective (ELBO) belongs to the caller",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str):
    """(target module, line, inside a function) for every import ``module`` runs."""
    path = MODULES[module]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, in_function)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                    package = package[: len(package) - child.level + 1]
                    base = ".".join(package + ([base] if base else []))
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.append((full if full in MODULES else base, child.lineno, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return found


IMPORTS = {module: _imports(module) for module in MODULES}


def _graph():
    return {m: {t for t, _, _ in found if t in MODULES and t != m} for m, found in IMPORTS.items()}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components, counter = {}, {}, [], set(), [], [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return components


def _layer_violations():
    """(importer, imported) pairs where train/ imports lvm/ or lvm/ imports train/."""
    out = set()
    for module, targets in _graph().items():
        for target in targets:
            for low, high in (("bayesgen.train", "bayesgen.lvm"), ("bayesgen.lvm", "bayesgen.train")):
                if module.startswith(low + ".") and target.startswith(high + "."):
                    out.add((module, target))
    return out


def test_the_checks_see_the_package():
    assert {"bayesgen", "bayesgen.train.loop", "bayesgen.lvm", "bayesgen.cli"} <= set(MODULES)
    assert ("bayesgen.train.loop", "bayesgen.lvm.objectives") in _layer_violations()
    # a cycle planted in a copy of the graph is found (config imports _errors: add the way back)
    graph = _graph()
    graph["bayesgen._errors"] = graph["bayesgen._errors"] | {"bayesgen.config"}
    assert any({"bayesgen._errors", "bayesgen.config"} <= set(c) for c in _cycles(graph))
    # imports inside functions are seen, those under TYPE_CHECKING are not
    assert any(target == "arviz" and inside for target, _, inside in IMPORTS["bayesgen.bayes.posterior"])
    assert not any(t == "bayesgen.data._datasets" for t, _, _ in IMPORTS["bayesgen.data._preprocess"])


def test_no_import_cycles():
    # A cycle is a design question: move the shared piece down a layer. Function-level imports
    # count (that is where cycles hide).
    assert _cycles(_graph()) == []


def test_imports_inside_functions_are_only_the_lazy_ones():
    found = [f"{module}:{line} imports {target}" for module, imports in IMPORTS.items()
             for target, line, inside in imports
             if inside and not any(target == lazy or target.startswith(lazy + ".") for lazy in LAZY)
             and not (module in PARSER_MODULES or module.startswith(PARSER_MODULES))]
    assert found == [], "import these at the top of the module, or add the module to LAZY with its reason"


def test_no_private_modules_of_other_packages():
    found = []
    for module, imports in IMPORTS.items():
        for target, line, _ in imports:
            parts = target.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_") and not part.startswith("__")]
            if target.startswith("bayesgen.") and private:
                owner = ".".join(parts[: private[0]])
                if module != owner and not module.startswith(owner + "."):
                    found.append(f"{module}:{line} imports {target}; import it from {owner}")
    assert found == []


def test_layers_train_below_lvm_except_the_listed_debt():
    assert _layer_violations() == set(LAYER_DEBT)


def _library_strings(with_cli: bool = False):
    """(module, line, text) of every string literal (outside the CLI modules unless ``with_cli``),
    docstrings excepted."""
    for module, path in MODULES.items():
        name = module.rsplit(".", 1)[-1]
        if not with_cli and (name.startswith("cli") or name == "completion" or module.startswith("bayesgen.cli.")):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        in_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):   # an f-string as one text, its fields as {}
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
                yield module, node.lineno, text
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and id(node) not in in_fstrings):
                yield module, node.lineno, node.value


def test_library_messages_name_options_not_flags():
    # The library names an option as a Python caller passes it (latent_dim=2, kl='mc'); the CLI
    # rewrites those into its flags (bayesgen.cli.in_flags). A message may still quote a whole
    # command line to rerun ("rerun bayesgen train ... with --force"): that names a command, not
    # an option of the call that failed.
    flag = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")
    found = [f"{module}:{line}: {text[:80]!r}" for module, line, text in _library_strings()
             if flag.search(text) and "bayesgen " not in text]
    assert found == []


def _concrete_overrides():
    """``Class.method overrides Base.method`` wherever a bayesgen Equinox module redefines a method
    that a bayesgen base class implements (overriding an abstract method is what subclasses are
    for). The EM estimators' private hooks are left to their scikit-learn rewrite (issue 16)."""
    import importlib
    import inspect

    import equinox as eqx

    found = []
    for module in MODULES:
        if module.endswith("__main__"):
            continue
        namespace = vars(importlib.import_module(module))
        for cls in namespace.values():
            if not inspect.isclass(cls) or cls.__module__ != module or not issubclass(cls, eqx.Module):
                continue
            for name, value in vars(cls).items():
                if name.startswith("__") or not (callable(value) or isinstance(value, property)):
                    continue
                for base in cls.__mro__[1:]:
                    if base.__module__.startswith("bayesgen") and name in vars(base):
                        if not getattr(vars(base)[name], "__isabstractmethod__", False):
                            found.append(f"{cls.__module__}.{cls.__name__}.{name} overrides {base.__name__}.{name}")
                        break
    return found


def test_abstract_or_final_no_concrete_method_is_overridden():
    # STYLE.md 2: an abstract base declares what a part provides; concrete parts implement it and
    # never redefine what a base already implements (equinox's abstract-or-final pattern).
    assert _concrete_overrides() == []


def test_run_file_names_are_spelled_only_in_layout():
    # bayesgen/layout.py owns the file names of a run directory; everyone else asks it. ("plots"
    # is also a module name, so only names with a dot and the checkpoints folder are checked.)
    from bayesgen import layout

    names = {value for name, value in vars(layout).items()
             if name.isupper() and isinstance(value, str) and ("." in value or value == layout.CHECKPOINTS)}
    assert {"metrics.jsonl", "summary.json", "checkpoints"} <= names
    found = [f"{module}:{line} spells {text!r}" for module, line, text in _library_strings(with_cli=True)
             if text in names and module != "bayesgen.layout"]
    assert found == []
