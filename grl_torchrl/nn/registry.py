"""Name -> class registries for backbones (modules) and encoders, and config-block building.

Names are case-insensitive. Registering a taken name raises unless ``override=True``; an
unknown name raises an error that lists the known names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

__all__ = [
    "build_block",
    "get_encoder",
    "get_module",
    "register_encoder",
    "register_module",
]


class _Registry:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type] = {}

    def register(self, cls: type, name: str | None = None, *, override: bool = False) -> type:
        if not callable(cls):
            raise TypeError(f"register_{self.kind}: expected a class or callable, got {cls!r}")
        name = cls.__name__ if name is None else name
        if not isinstance(name, str) or not name:
            raise TypeError(f"register_{self.kind}: name must be a non-empty str, got {name!r}")
        key = name.lower()
        if key in self._entries and not override:
            raise KeyError(
                f"{self.kind} name {name!r} is already registered "
                f"(to {self._entries[key].__name__}); pass override=True to replace it"
            )
        self._entries[key] = cls
        return cls

    def get(self, name: str) -> type:
        if not isinstance(name, str):
            raise TypeError(f"get_{self.kind}: name must be a str, got {type(name).__name__}")
        try:
            return self._entries[name.lower()]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise ValueError(f"Unknown {self.kind} type {name!r}; known types: {known}") from None


_MODULES = _Registry("module")
_ENCODERS = _Registry("encoder")


def register_module(cls: type, name: str | None = None, *, override: bool = False) -> type:
    """Registers a backbone class under ``name`` (default: the class name), case-insensitive.

    Returns ``cls`` so it can be used as a decorator through :func:`functools.partial`.

    Examples:
        >>> from torch import nn
        >>> from grl_torchrl.nn import get_module, register_module
        >>> class Tiny(nn.Linear): ...
        >>> _ = register_module(Tiny, "doctest_tiny")
        >>> get_module("DocTest_Tiny") is Tiny
        True
    """
    return _MODULES.register(cls, name, override=override)


def get_module(name: str) -> type:
    """Returns the backbone class registered under ``name`` (case-insensitive).

    Examples:
        >>> from grl_torchrl.nn import get_module
        >>> get_module("multilayerperceptron").__name__
        'MultiLayerPerceptron'
    """
    return _MODULES.get(name)


def register_encoder(cls: type, name: str | None = None, *, override: bool = False) -> type:
    """Registers an encoder class under ``name`` (default: the class name), case-insensitive.

    Examples:
        >>> from torch import nn
        >>> from grl_torchrl.nn import get_encoder, register_encoder
        >>> class Enc(nn.Flatten): ...
        >>> _ = register_encoder(Enc, "doctest_enc")
        >>> get_encoder("DOCTEST_ENC") is Enc
        True
    """
    return _ENCODERS.register(cls, name, override=override)


def get_encoder(name: str) -> type:
    """Returns the encoder class registered under ``name`` (case-insensitive).

    Examples:
        >>> from grl_torchrl.nn import get_encoder
        >>> get_encoder("TensorDictConcatenateEncoder").__name__
        'TensorDictConcatenateEncoder'
    """
    return _ENCODERS.get(name)


def build_block(block: Mapping[str, Any], *, kind: str, where: str) -> nn.Module:
    """Builds ``{type, args}`` (a dict or EasyDict) with the ``kind`` registry.

    ``where`` names the config entry in error messages (e.g. ``"backbone"``): an argument the
    class rejects (unknown, of the wrong type, out of range) raises ``TypeError`` /
    ``ValueError`` naming ``config.<where>``, the type and the argument.

    Examples:
        >>> from grl_torchrl.nn import build_block
        >>> block = {"type": "MultiLayerPerceptron",
        ...          "args": {"hidden_sizes": [3, 8], "output_size": 0, "activation": "relu"}}
        >>> build_block(block, kind="module", where="backbone")
        Traceback (most recent call last):
        ...
        ValueError: config.backbone: module type 'MultiLayerPerceptron' (MultiLayerPerceptron) \
rejected args {...}: MultiLayerPerceptron: output_size must be a positive int, got 0
    """
    if not isinstance(block, Mapping):
        raise TypeError(
            f"config.{where} must be a mapping with a 'type' key, got {type(block).__name__}"
        )
    if "type" not in block:
        raise ValueError(f"config.{where} must be a mapping with a 'type' key, got {block!r}")
    if not isinstance(block["type"], str):
        raise TypeError(f"config.{where}.type must be a str, got {block['type']!r}")
    cls = (get_module if kind == "module" else get_encoder)(block["type"])
    args = block.get("args")
    args = {} if args is None else args
    if not isinstance(args, Mapping):
        raise TypeError(f"config.{where}.args must be a mapping, got {args!r}")
    try:
        return cls(**dict(args))
    except (TypeError, ValueError) as err:
        error = TypeError if isinstance(err, TypeError) else ValueError
        raise error(
            f"config.{where}: {kind} type {block['type']!r} ({cls.__name__}) rejected "
            f"args {dict(args)!r}: {err}"
        ) from err
