"""Activation layers by name (GenerativeRL's names, plus a few common ones)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from grl_torchrl.nn._checks import describe

__all__ = ["Square", "Swish", "get_activation"]


class Swish(nn.Module):
    """Swish with a learnable slope: ``x * sigmoid(beta * x)``, ``beta`` starting at 1.

    ``beta`` is a trainable scalar parameter (state-dict key ``beta``, as upstream); with
    ``beta = 1`` this is SiLU. Unlike upstream, every layer gets its own ``beta`` (upstream
    shares one instance, hence one ``beta``, across all layers and networks).

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import Swish
        >>> act = Swish()
        >>> list(act.state_dict()), act.beta.requires_grad
        (['beta'], True)
        >>> torch.allclose(act(torch.tensor([-1.0, 2.0])), torch.nn.functional.silu(
        ...     torch.tensor([-1.0, 2.0])))
        True
    """

    def __init__(self) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


class Square(nn.Module):
    """Elementwise square, ``x ** 2`` (upstream's ``"square"`` activation).

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import Square
        >>> Square()(torch.tensor([-3.0, 0.5]))
        tensor([9.0000, 0.2500])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.square()


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": Swish,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "square": Square,
    "identity": nn.Identity,
}


def check_activation(owner: str, key: str, name: object) -> str:
    """Raises unless ``name`` is a known activation name; ``owner``/``key`` name the entry."""
    if not isinstance(name, str):
        raise TypeError(f"{owner}: {key} must be an activation name (str), got {describe(name)}")
    if name.lower() not in _ACTIVATIONS:
        known = ", ".join(sorted(_ACTIVATIONS))
        raise ValueError(
            f"{owner}: {key} is {name!r}, not a known activation; known activations: {known}"
        )
    return name


def get_activation(name: str) -> nn.Module:
    """Returns a NEW activation module for ``name`` (case-insensitive).

    Unlike upstream, each call gives its own instance, so no two layers share one (nor, for
    ``"swish"``, one ``beta``).

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import get_activation
        >>> act = get_activation("ReLU")
        >>> act(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])
        >>> act is get_activation("relu")
        False
        >>> get_activation("square")(torch.tensor([-2.0]))
        tensor([4.])
    """
    check_activation("get_activation", "name", name)
    return _ACTIVATIONS[name.lower()]()
