"""Input encoders: identity, dict/TensorDict concatenation, Gaussian Fourier features."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from tensordict import TensorDictBase
from torch import nn

from grl_torchrl.nn.registry import register_encoder

__all__ = [
    "GaussianFourierProjectionEncoder",
    "IdentityEncoder",
    "TensorDictConcatenateEncoder",
]


class IdentityEncoder(nn.Identity):
    """Returns its input unchanged (the encoder used when a config names none).

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import IdentityEncoder
        >>> x = torch.randn(2, 3)
        >>> IdentityEncoder()(x) is x
        True
    """


def _leaves(x: Mapping | TensorDictBase, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    out = []
    for key in x.keys():
        value = x[key]
        name = f"{prefix}{key}"
        if isinstance(value, (Mapping, TensorDictBase)):
            out.extend(_leaves(value, name + "."))
        else:
            out.append((name, value))
    return out


class TensorDictConcatenateEncoder(nn.Module):
    """Flattens every leaf of a dict / TensorDict observation and concatenates them.

    Leaves are taken in sorted order of their (dot-joined) key, so the result does not depend
    on insertion order. A TensorDict with ``batch_dims = k > 0`` keeps its ``k`` leading dims:
    each leaf becomes ``[*batch, d_i]``. A plain dict (or a TensorDict without batch size) is
    read upstream's way: one leading batch dim, a 1-D leaf becomes ``[B, 1]``. A plain tensor
    is returned unchanged. Takes no arguments (as upstream).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from grl_torchrl.nn import TensorDictConcatenateEncoder
        >>> obs = TensorDict(
        ...     {"velocity": torch.ones(4, 2, 3), "position": torch.zeros(4, 2, 2, 2)},
        ...     batch_size=[4, 2],
        ... )
        >>> TensorDictConcatenateEncoder()(obs).shape
        torch.Size([4, 2, 7])
        >>> TensorDictConcatenateEncoder()({"a": torch.ones(5), "b": torch.ones(5, 2)}).shape
        torch.Size([5, 3])
    """

    def forward(self, x: Mapping | TensorDictBase | torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x
        if not isinstance(x, (Mapping, TensorDictBase)):
            raise TypeError(
                f"TensorDictConcatenateEncoder expects a dict, TensorDict or tensor, "
                f"got {type(x).__name__}"
            )
        leaves = sorted(_leaves(x), key=lambda kv: kv[0])
        if not leaves:
            raise ValueError("TensorDictConcatenateEncoder got an empty dict/TensorDict")
        batch_dims = x.batch_dims if isinstance(x, TensorDictBase) else 0
        if batch_dims:
            batch = x.batch_size
            tensors = [v.reshape(*batch, -1) for _, v in leaves]
        else:
            tensors = []
            for name, v in leaves:
                if v.dim() == 0:
                    raise ValueError(f"TensorDictConcatenateEncoder: leaf {name!r} is a scalar")
                tensors.append(v.unsqueeze(-1) if v.dim() == 1 else v.reshape(v.shape[0], -1))
        return torch.cat(tensors, dim=-1)


class GaussianFourierProjectionEncoder(nn.Module):
    """Random Fourier features of every input element.

    With fixed Gaussian frequencies ``w ~ N(0, 1)`` of size ``embed_dim // 2`` (stored as the
    non-trainable parameter ``W = 2π·scale·w``, as upstream), each element ``x`` of an input of
    shape ``[*B, *x_shape]`` maps to ``[sin(2π·s·w·x), cos(2π·s·w·x)]``. With ``flatten=True``
    the output is ``[*B, prod(x_shape) * 2 * (embed_dim // 2)]`` (see :attr:`output_dim`),
    otherwise ``[*B, *x_shape, 2 * (embed_dim // 2)]``.

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import GaussianFourierProjectionEncoder
        >>> enc = GaussianFourierProjectionEncoder(embed_dim=8, x_shape=[3])
        >>> enc(torch.randn(5, 3)).shape, enc.output_dim
        (torch.Size([5, 24]), 24)
        >>> enc.W.requires_grad
        False
    """

    def __init__(
        self,
        embed_dim: int,
        x_shape: Sequence[int] | int,
        flatten: bool = True,
        scale: float = 30.0,
    ) -> None:
        super().__init__()
        if embed_dim < 2:
            raise ValueError(f"embed_dim must be >= 2, got {embed_dim}")
        self.x_shape = (int(x_shape),) if isinstance(x_shape, int) else tuple(x_shape)
        self.flatten = flatten
        self.W = nn.Parameter(
            torch.randn(embed_dim // 2) * scale * 2 * math.pi, requires_grad=False
        )

    @property
    def output_dim(self) -> int:
        """The number of features per sample once flattened, ``prod(x_shape) * 2 * (embed_dim // 2)``."""
        return math.prod(self.x_shape) * 2 * self.W.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.x_shape)
        if tuple(x.shape[x.dim() - n :]) != self.x_shape:
            raise ValueError(
                f"GaussianFourierProjectionEncoder: input trailing shape {tuple(x.shape)} "
                f"does not end with x_shape {self.x_shape}"
            )
        proj = x.unsqueeze(-1) * self.W
        out = torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
        return out.flatten(start_dim=-1 - n) if self.flatten else out


register_encoder(IdentityEncoder, "identity")
register_encoder(TensorDictConcatenateEncoder)
register_encoder(GaussianFourierProjectionEncoder)
