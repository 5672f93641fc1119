"""Sphinx configuration for the grl_torchrl documentation (``make docs``)."""

import inspect
import os
import sys

# Build from this checkout even when the package is not installed (autodoc imports it).
sys.path.insert(0, os.path.abspath(".."))

from sphinx.util import inspect as sphinx_inspect  # noqa: E402

import grl_torchrl  # noqa: E402
import grl_torchrl.nn  # noqa: E402
import grl_torchrl.rl_modules  # noqa: E402

project = "grl_torchrl"
author = "grl_torchrl developers"
copyright = "2026, grl_torchrl developers"
release = grl_torchrl.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
# No intersphinx: the docs must build offline (CI reaches package registries only).

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = []

autodoc_member_order = "bysource"
# A method without its own docstring (``forward``) would otherwise show torch's
# ``nn.Module.forward`` text; leave such methods out instead.
autodoc_inherit_docstrings = False
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# Every cross-reference must resolve (a broken one is a warning, and warnings are errors).
# Names from other libraries cannot resolve without intersphinx, so only those are exempt;
# anything under ``grl_torchrl`` still has to point at a documented object.
nitpicky = True
_EXTERNAL = (
    # third-party packages and the standard library
    r"(torch|tensordict|torchrl|numpy|np|gymnasium|gym|easydict|typing|typing_extensions"
    r"|collections|abc|builtins|types|enum|functools|itertools|dataclasses|contextlib"
    r"|numbers|os|pathlib|warnings"
    # their names as short type hints render them
    r"|Tensor|TensorDict|TensorDictBase|TensorDictModuleBase|TensorDictModule|NestedKey"
    r"|EasyDict|Callable|Sequence|Mapping|Iterable|Iterator|Any|Literal|Optional|Union|Self"
    r"|ndarray|nn|optional)(\..*)?"
)
# Private helpers (``_EnsembleHead``...) have no page by design; a signature may name them.
_PRIVATE = r"grl_torchrl(\.\w+)*\._\w+"
nitpick_ignore_regex = [(r"py:.*", _EXTERNAL), (r"py:.*", _PRIVATE)]

html_theme = "alabaster"
html_title = f"grl_torchrl {release}"
# Images for the results page (learning curves) live in docs/_static/.
html_static_path = ["_static"]
html_theme_options = {"description": "GenerativeRL's rl_modules, native to TorchRL"}


# "Bases:" lines. The public classes are documented where users import them from
# (grl_torchrl.nn, grl_torchrl.rl_modules), not in the private modules that define them, and
# private helper bases (``_SingleCritic``...) have no page. So a base that is public is
# pointed at its documented name, and a private one is replaced by its own bases, until
# public or external classes (e.g. tensordict's TensorDictModuleBase) remain.
_DOCUMENTED = {
    getattr(module, name): f"{module.__name__}.{name}"
    for module in (grl_torchrl.nn, grl_torchrl.rl_modules)
    for name in module.__all__
    if isinstance(getattr(module, name), type)
}


def _public_bases(cls: type) -> list:
    bases: list = []
    for base in cls.__bases__:
        if base in _DOCUMENTED:
            found = [f":py:class:`~{_DOCUMENTED[base]}`"]
        elif base.__module__.split(".")[0] == "grl_torchrl":
            found = _public_bases(base)
        elif base is object:
            found = []
        else:
            found = [base]
        bases.extend(b for b in found if b not in bases)
    return bases


def _process_bases(app, name, obj, options, bases) -> None:
    bases[:] = _public_bases(obj)


# Class signatures. tensordict's TensorDictModuleBase defines ``__new__(cls, *args, **kwargs)``,
# which autodoc prefers to ``__init__``, so every critic would read ``QNetwork(*args,
# **kwargs)``. Show the constructor's real signature instead.
def _process_signature(app, what, name, obj, options, signature, return_annotation):
    if what != "class" or not signature or "*args" not in signature:
        return None
    init = obj.__dict__.get("__init__") or next(
        (c.__dict__["__init__"] for c in obj.__mro__ if "__init__" in c.__dict__), None
    )
    if init is None:
        return None
    sig = sphinx_inspect.signature(init, bound_method=True)
    sig = sig.replace(return_annotation=inspect.Signature.empty)
    return sphinx_inspect.stringify_signature(sig, unqualified_typehints=True), return_annotation


def setup(app) -> None:
    app.connect("autodoc-process-bases", _process_bases)
    app.connect("autodoc-process-signature", _process_signature)
