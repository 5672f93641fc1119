"""MLP backbones with GenerativeRL's parameter layout.

``torchrl.modules.MLP`` is not used here: it names its layers ``0, 1, 2, ...`` inside one
``nn.Sequential``, whereas GenerativeRL checkpoints name them ``linear0, activation0, ...``.
Keeping upstream's names is what lets an upstream ``state_dict`` load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from grl_torchrl.nn.activations import get_activation
from grl_torchrl.nn.registry import register_module

__all__ = ["ConcatenateMLP", "MultiLayerPerceptron"]


class MultiLayerPerceptron(nn.Module):
    """Fully-connected network ``hidden_sizes[0] -> ... -> hidden_sizes[-1] -> output_size``.

    ``hidden_sizes[0]`` is the input size. ``model`` is an ``nn.Sequential`` whose children are
    named ``linear0, activation0, [dropout0], [layernorm0], linear1, ..., linearN,
    [final_activation]`` (upstream's layout; every layer is its own instance).

    Args:
        hidden_sizes: input size followed by the hidden sizes.
        output_size: size of the last layer.
        activation: an activation name, or one name per hidden layer.
        dropout: dropout probability after each hidden activation (``None``/0: none).
        layernorm: add a LayerNorm after each hidden activation.
        final_activation: optional activation name applied to the output.

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import MultiLayerPerceptron
        >>> mlp = MultiLayerPerceptron([3, 8], output_size=1, activation="relu")
        >>> [name for name, _ in mlp.model.named_children()]
        ['linear0', 'activation0', 'linear1']
        >>> mlp(torch.randn(5, 2, 3)).shape
        torch.Size([5, 2, 1])
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int],
        output_size: int,
        activation: str | Sequence[str],
        dropout: float | None = None,
        layernorm: bool = False,
        final_activation: str | None = None,
    ) -> None:
        super().__init__()
        hidden_sizes = [int(h) for h in hidden_sizes]
        if not hidden_sizes or min(hidden_sizes) <= 0:
            raise ValueError(f"hidden_sizes must be positive sizes, got {hidden_sizes}")
        n_hidden = len(hidden_sizes) - 1
        if isinstance(activation, str):
            activation = [activation] * n_hidden
        elif len(activation) < n_hidden:
            raise ValueError(
                f"activation: need {n_hidden} names for hidden_sizes {hidden_sizes}, "
                f"got {list(activation)}"
            )
        self.hidden_sizes = hidden_sizes
        self.output_size = int(output_size)
        self.model = nn.Sequential()
        for i in range(n_hidden):
            self.model.add_module(f"linear{i}", nn.Linear(hidden_sizes[i], hidden_sizes[i + 1]))
            self.model.add_module(f"activation{i}", get_activation(activation[i]))
            if dropout:
                self.model.add_module(f"dropout{i}", nn.Dropout(dropout))
            if layernorm:
                self.model.add_module(f"layernorm{i}", nn.LayerNorm(hidden_sizes[i + 1]))
        self.model.add_module(f"linear{n_hidden}", nn.Linear(hidden_sizes[-1], self.output_size))
        if final_activation is not None:
            self.model.add_module("final_activation", get_activation(final_activation))

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
        return self.model(x)


class ConcatenateMLP(nn.Module):
    """Concatenates its positional inputs on the last dim, then runs one MLP (``.model``).

    Takes :class:`MultiLayerPerceptron`'s arguments.

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import ConcatenateMLP
        >>> net = ConcatenateMLP(hidden_sizes=[5, 16], output_size=1, activation="silu")
        >>> net(torch.randn(4, 2), torch.randn(4, 3)).shape
        torch.Size([4, 1])
        >>> next(iter(net.state_dict()))
        'model.model.linear0.weight'
    """

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.model = MultiLayerPerceptron(**kwargs)

    def check_input_dims(self, dims: Sequence[int]) -> None:
        """Raises ``ValueError`` unless the concatenated inputs fit the MLP's first layer."""
        try:
            self.model.check_input_dims(dims)
        except ValueError as err:
            raise ValueError(f"ConcatenateMLP: {err}") from None

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        self.check_input_dims([t.shape[-1] for t in x])
        return self.model.model(torch.cat(x, dim=-1))


register_module(MultiLayerPerceptron)
register_module(ConcatenateMLP)
