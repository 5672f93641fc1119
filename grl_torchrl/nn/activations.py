"""Activation layers by name."""

from __future__ import annotations

from torch import nn

__all__ = ["get_activation"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def get_activation(name: str) -> nn.Module:
    """Returns a NEW activation module for ``name`` (case-insensitive).

    Unlike upstream, each call gives its own instance, so no two layers share one.

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import get_activation
        >>> act = get_activation("ReLU")
        >>> act(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])
        >>> act is get_activation("relu")
        False
    """
    if not isinstance(name, str):
        raise TypeError(f"activation must be a str, got {type(name).__name__}")
    try:
        return _ACTIVATIONS[name.lower()]()
    except KeyError:
        known = ", ".join(sorted(_ACTIVATIONS))
        raise ValueError(f"Unknown activation {name!r}; known activations: {known}") from None
