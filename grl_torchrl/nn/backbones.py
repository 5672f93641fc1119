"""MLP backbones with GenerativeRL's parameter layout.

``torchrl.modules.MLP`` is not used here: it names its layers ``0, 1, 2, ...`` inside one
``nn.Sequential``, whereas GenerativeRL checkpoints name them ``linear0, activation0, ...``.
Keeping upstream's names is what lets an upstream ``state_dict`` load unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from grl_torchrl.nn._checks import (
    check_bool,
    check_int,
    check_int_sequence,
    check_real,
    describe,
    is_sequence,
)
from grl_torchrl.nn.activations import check_activation, get_activation
from grl_torchrl.nn.registry import register_module

__all__ = ["ConcatenateMLP", "MultiLayerPerceptron"]


def _check_mlp_args(
    owner: str,
    hidden_sizes: Any,
    output_size: Any,
    activation: Any,
    dropout: Any = None,
    layernorm: Any = False,
    final_activation: Any = None,
    scale: Any = None,
    shrink: Any = None,
) -> dict[str, Any]:
    """Validates :class:`MultiLayerPerceptron`'s arguments; returns them normalised."""
    hidden_sizes = check_int_sequence(owner, "hidden_sizes", hidden_sizes)
    n_hidden = len(hidden_sizes) - 1
    if isinstance(activation, str):
        check_activation(owner, "activation", activation)
        activation = [activation] * n_hidden
    elif is_sequence(activation):
        if len(activation) != n_hidden:
            raise ValueError(
                f"{owner}: activation must be one name or {n_hidden} names (one per hidden "
                f"layer of hidden_sizes {hidden_sizes}), got {len(activation)}: "
                f"{list(activation)!r}"
            )
        for i, name in enumerate(activation):
            check_activation(owner, f"activation[{i}]", name)
        activation = list(activation)
    else:
        raise TypeError(
            f"{owner}: activation must be a name or a list of names, got {describe(activation)}"
        )
    if final_activation is not None:
        check_activation(owner, "final_activation", final_activation)
    return dict(
        hidden_sizes=hidden_sizes,
        output_size=check_int(owner, "output_size", output_size),
        activation=activation,
        dropout=None if dropout is None else check_real(owner, "dropout", dropout, below_one=True),
        layernorm=check_bool(owner, "layernorm", layernorm),
        final_activation=final_activation,
        scale=None if scale is None else check_real(owner, "scale", scale, nonzero=True),
        shrink=None if shrink is None else check_real(owner, "shrink", shrink, positive=True),
    )


class MultiLayerPerceptron(nn.Module):
    """Fully-connected network ``hidden_sizes[0] -> ... -> hidden_sizes[-1] -> output_size``.

    ``hidden_sizes[0]`` is the input size. ``model`` is an ``nn.Sequential`` whose children are
    named ``linear0, activation0, [dropout0], [layernorm0], linear1, ..., linearN,
    [final_activation]`` (upstream's layout; every layer is its own instance).

    Every argument is checked at construction: a wrong type raises ``TypeError``, a value out
    of range ``ValueError``, and the message names the argument (``hidden_sizes[0]``,
    ``output_size``, ...). Nothing is coerced: ``3.7``, ``True`` or ``"3,16"`` are not sizes.

    Args:
        hidden_sizes: input size followed by the hidden sizes (positive ints).
        output_size: size of the last layer (a positive int).
        activation: an activation name, or one name per hidden layer.
        dropout: dropout probability in ``[0, 1)`` after each hidden activation
            (``None``/0: none).
        layernorm: add a LayerNorm after each hidden activation.
        final_activation: optional activation name applied to the output.
        scale: if given, the output is multiplied by this constant, stored as the
            non-trainable parameter ``scale`` (upstream's state-dict key).
        shrink: if given, the last ``Linear``'s weight is re-drawn from ``N(0, shrink²)``
            (a small ``shrink`` such as 0.01 starts the network near a constant output).

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import MultiLayerPerceptron
        >>> mlp = MultiLayerPerceptron([3, 8], output_size=1, activation="relu")
        >>> [name for name, _ in mlp.model.named_children()]
        ['linear0', 'activation0', 'linear1']
        >>> mlp(torch.randn(5, 2, 3)).shape
        torch.Size([5, 2, 1])
        >>> scaled = MultiLayerPerceptron([3, 8], 1, "swish", scale=2.0, shrink=0.01)
        >>> sorted(scaled.state_dict())[:2], scaled.scale.requires_grad
        (['model.activation0.beta', 'model.linear0.bias'], False)
        >>> MultiLayerPerceptron([3.7, 16], 1, "relu")
        Traceback (most recent call last):
        ...
        TypeError: MultiLayerPerceptron: hidden_sizes[0] must be a positive int, got 3.7 (float)
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int],
        output_size: int,
        activation: str | Sequence[str],
        dropout: float | None = None,
        layernorm: bool = False,
        final_activation: str | None = None,
        scale: float | None = None,
        shrink: float | None = None,
    ) -> None:
        super().__init__()
        args = _check_mlp_args(
            type(self).__name__,
            hidden_sizes,
            output_size,
            activation,
            dropout,
            layernorm,
            final_activation,
            scale,
            shrink,
        )
        hidden_sizes, activation = args["hidden_sizes"], args["activation"]
        dropout, layernorm = args["dropout"], args["layernorm"]
        n_hidden = len(hidden_sizes) - 1
        self.hidden_sizes = hidden_sizes
        self.output_size = args["output_size"]
        self.model = nn.Sequential()
        for i in range(n_hidden):
            self.model.add_module(f"linear{i}", nn.Linear(hidden_sizes[i], hidden_sizes[i + 1]))
            self.model.add_module(f"activation{i}", get_activation(activation[i]))
            if dropout:
                self.model.add_module(f"dropout{i}", nn.Dropout(dropout))
            if layernorm:
                self.model.add_module(f"layernorm{i}", nn.LayerNorm(hidden_sizes[i + 1]))
        last = nn.Linear(hidden_sizes[-1], self.output_size)
        self.model.add_module(f"linear{n_hidden}", last)
        if final_activation is not None:
            self.model.add_module("final_activation", get_activation(final_activation))
        # Upstream: a non-trainable 0-d parameter named "scale" when given, else the float 1.0.
        if args["scale"] is None:
            self.scale = 1.0
        else:
            self.scale = nn.Parameter(torch.tensor(args["scale"]), requires_grad=False)
        if args["shrink"] is not None:
            with torch.no_grad():
                last.weight.normal_(0.0, args["shrink"])

    @property
    def in_features(self) -> int:
        return self.hidden_sizes[0]

    def check_input_dims(self, dims: Sequence[int]) -> None:
        """Raises ``ValueError`` unless the input last dims (``dims``, summed) fit ``linear0``."""
        if sum(dims) != self.in_features:
            parts = f" (= {' + '.join(map(str, dims))})" if len(dims) > 1 else ""
            raise ValueError(
                f"{type(self).__name__}: input last dim is {sum(dims)}{parts}, but "
                f"hidden_sizes[0] expects {self.in_features}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_dims([x.shape[-1]])
        out = self.model(x)
        # Not isinstance(nn.Parameter): under functional_call / TensorDict.to_module the
        # parameter is swapped for a plain tensor, which must be applied all the same.
        return out if isinstance(self.scale, float) else out * self.scale


_MLP_SIGNATURE = inspect.signature(MultiLayerPerceptron)


class ConcatenateMLP(nn.Module):
    """Concatenates its positional inputs on the last dim, then runs one MLP (``.model``).

    Takes :class:`MultiLayerPerceptron`'s arguments (checked the same way, errors naming
    ``ConcatenateMLP``).

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import ConcatenateMLP
        >>> net = ConcatenateMLP(hidden_sizes=[5, 16], output_size=1, activation="silu")
        >>> net(torch.randn(4, 2), torch.randn(4, 3)).shape
        torch.Size([4, 1])
        >>> next(iter(net.state_dict()))
        'model.model.linear0.weight'
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        try:
            bound = _MLP_SIGNATURE.bind(**kwargs)
        except TypeError as err:
            raise TypeError(f"ConcatenateMLP: {err}") from None
        _check_mlp_args("ConcatenateMLP", **bound.arguments)
        self.model = MultiLayerPerceptron(**kwargs)

    def check_input_dims(self, dims: Sequence[int]) -> None:
        """Raises ``ValueError`` unless the concatenated inputs fit the MLP's first layer."""
        try:
            self.model.check_input_dims(dims)
        except ValueError as err:
            raise ValueError(f"ConcatenateMLP: {err}") from None

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        self.check_input_dims([t.shape[-1] for t in x])
        return self.model(torch.cat(x, dim=-1))


register_module(MultiLayerPerceptron)
register_module(ConcatenateMLP)
