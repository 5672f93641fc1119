"""Input encoders: identity, dict/TensorDict concatenation, Fourier features, embeddings.

The time encoders (``GaussianFourierProjectionTimeEncoder``, ...) live in
:mod:`grl_torchrl.nn.time_encoders`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from grl_torchrl.nn._checks import (
    check_bool,
    check_int,
    check_int_sequence,
    check_real,
    describe,
    is_sequence,
)
from grl_torchrl.nn.registry import register_encoder

__all__ = [
    "DiscreteEmbeddingEncoder",
    "GaussianFourierProjectionEncoder",
    "IdentityEncoder",
    "TensorDictConcatenateEncoder",
]


def check_tensor_input(owner: str, x: Any, *, integer: bool = False) -> torch.Tensor:
    """Raises ``TypeError`` unless ``x`` is a real-valued (``integer``: integer) tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: input must be a torch.Tensor, got {type(x).__name__}")
    if integer:
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise TypeError(f"{owner}: input must be an integer tensor (indices), got {x.dtype}")
    elif x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"{owner}: input must be a real-valued tensor, got {x.dtype}")
    return x


class IdentityEncoder(nn.Identity):
    """Returns its input unchanged (the encoder used when a config names none).

    Takes no arguments (``nn.Identity`` would silently ignore any).

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import IdentityEncoder
        >>> x = torch.randn(2, 3)
        >>> IdentityEncoder()(x) is x
        True
    """

    def __init__(self) -> None:
        super().__init__()


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


def _check_keys(keys: Any) -> list[str | tuple[str, ...]] | None:
    owner = "TensorDictConcatenateEncoder"
    if keys is None:
        return None
    if not is_sequence(keys) or isinstance(keys, tuple) and all(isinstance(k, str) for k in keys):
        # A tuple of strings would be ambiguous (one nested key, or several keys): use a list.
        raise TypeError(
            f"{owner}: keys must be a list of keys (str, or tuple of str for a nested key), "
            f"got {describe(keys)}"
        )
    if not keys:
        raise ValueError(f"{owner}: keys must name at least one entry, got {keys!r}")
    out: list[str | tuple[str, ...]] = []
    for i, key in enumerate(keys):
        if is_sequence(key):  # a nested key; a list too, as JSON / EasyDict configs give
            key = tuple(key)
        if isinstance(key, tuple) and len(key) == 1:
            key = key[0]
        ok = (isinstance(key, str) and key) or (
            isinstance(key, tuple) and key and all(isinstance(k, str) and k for k in key)
        )
        if not ok:
            raise TypeError(
                f"{owner}: keys[{i}] must be a non-empty str or a tuple of str, "
                f"got {describe(keys[i])}"
            )
        if key in out:
            raise ValueError(f"{owner}: keys[{i}] {key!r} is given twice in {keys!r}")
        out.append(key)
    return out


def _lookup(x: Mapping | TensorDictBase, key: str | tuple[str, ...]) -> Any:
    path = (key,) if isinstance(key, str) else key
    value = x
    for i, part in enumerate(path):
        if not isinstance(value, (Mapping, TensorDictBase)) or part not in value.keys():
            where = "the input" if i == 0 else f"entry {path[:i]!r}"
            known = list(value.keys()) if isinstance(value, (Mapping, TensorDictBase)) else []
            raise KeyError(
                f"TensorDictConcatenateEncoder: key {key!r} (from keys) is not in {where}; "
                f"it holds {known}"
            )
        value = value[part]
    return value


class TensorDictConcatenateEncoder(nn.Module):
    """Flattens the leaves of a dict / TensorDict observation and concatenates them.

    Leaves are taken in the input's insertion order, as upstream does (nested entries
    depth-first), so weights trained upstream see their features in the same order. When the
    order cannot be trusted (e.g. gymnasium's ``Dict`` space sorts its keys), name it with
    ``keys``: the entries are then taken in that order, a nested sub-dict's leaves in their
    insertion order, and any other entry of the input is ignored.

    A TensorDict with ``batch_dims = k > 0`` keeps its ``k`` leading dims: each leaf becomes
    ``[*batch, d_i]``. A plain dict (or a TensorDict without batch size) is read upstream's
    way: one leading batch dim, a 1-D leaf becomes ``[B, 1]``. A plain tensor is returned
    unchanged.

    Args:
        keys: optional list of the entries to concatenate, in order; a nested entry is a
            tuple of str (TensorDict's nested-key convention). ``None``: every leaf, in
            insertion order.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from grl_torchrl.nn import TensorDictConcatenateEncoder
        >>> obs = TensorDict(
        ...     {"velocity": torch.ones(4, 2, 3), "position": torch.zeros(4, 2, 2, 2)},
        ...     batch_size=[4, 2],
        ... )
        >>> TensorDictConcatenateEncoder()(obs)[0, 0]  # velocity first, as inserted
        tensor([1., 1., 1., 0., 0., 0., 0.])
        >>> TensorDictConcatenateEncoder(keys=["position", "velocity"])(obs)[0, 0]
        tensor([0., 0., 0., 0., 1., 1., 1.])
        >>> TensorDictConcatenateEncoder()({"a": torch.ones(5), "b": torch.ones(5, 2)}).shape
        torch.Size([5, 3])
    """

    def __init__(self, keys: Sequence[str | tuple[str, ...]] | None = None) -> None:
        super().__init__()
        self.keys = _check_keys(keys)

    def extra_repr(self) -> str:
        return "" if self.keys is None else f"keys={self.keys!r}"

    def _select(self, x: Mapping | TensorDictBase) -> list[tuple[str, Any]]:
        if self.keys is None:
            return _leaves(x)
        out = []
        for key in self.keys:
            value = _lookup(x, key)
            name = key if isinstance(key, str) else ".".join(key)
            if isinstance(value, (Mapping, TensorDictBase)):
                out.extend(_leaves(value, name + "."))
            else:
                out.append((name, value))
        return out

    def forward(self, x: Mapping | TensorDictBase | torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x
        if not isinstance(x, (Mapping, TensorDictBase)):
            raise TypeError(
                f"TensorDictConcatenateEncoder expects a dict, TensorDict or tensor, "
                f"got {type(x).__name__}"
            )
        leaves = self._select(x)
        if not leaves:
            raise ValueError("TensorDictConcatenateEncoder got an empty dict/TensorDict")
        for name, v in leaves:
            if not isinstance(v, torch.Tensor):
                raise TypeError(
                    f"TensorDictConcatenateEncoder: leaf {name!r} must be a tensor, "
                    f"got {type(v).__name__}"
                )
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
    the output is ``[*B, prod(x_shape) * embed_dim]`` (see :attr:`output_dim`), otherwise
    ``[*B, *x_shape, embed_dim]``.

    Args:
        embed_dim: features per element, an even int >= 2 (half sines, half cosines; upstream
            silently drops one feature of an odd size, so an odd size is rejected).
        x_shape: the trailing shape of one input sample (an int or a list of ints).
        flatten: flatten each sample's features into one dim.
        scale: the frequencies' standard deviation (a finite number > 0).

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
        owner = type(self).__name__
        embed_dim = check_int(owner, "embed_dim", embed_dim, minimum=2, even=True)
        if isinstance(x_shape, int) and not isinstance(x_shape, bool):
            x_shape = [check_int(owner, "x_shape", x_shape)]
        self.x_shape = tuple(check_int_sequence(owner, "x_shape", x_shape, min_len=0))
        self.flatten = check_bool(owner, "flatten", flatten)
        scale = check_real(owner, "scale", scale, positive=True)
        self.W = nn.Parameter(
            torch.randn(embed_dim // 2) * scale * 2 * math.pi, requires_grad=False
        )

    @property
    def output_dim(self) -> int:
        """The number of features per sample once flattened, ``prod(x_shape) * embed_dim``."""
        return math.prod(self.x_shape) * 2 * self.W.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor_input(type(self).__name__, x)
        n = len(self.x_shape)
        if x.dim() < n or tuple(x.shape[x.dim() - n :]) != self.x_shape:
            raise ValueError(
                f"GaussianFourierProjectionEncoder: input shape {tuple(x.shape)} "
                f"does not end with x_shape {self.x_shape}"
            )
        proj = x.unsqueeze(-1) * self.W
        out = torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
        return out.flatten(start_dim=-1 - n) if self.flatten else out


class DiscreteEmbeddingEncoder(nn.Module):
    """Embeds ``x_num`` integer features, each in ``[0, x_dim)``, into one ``hidden_dim`` vector.

    Each feature is looked up in one shared ``nn.Embedding(x_dim, hidden_dim)``
    (``embedding``); the ``x_num`` embeddings are concatenated and mapped by
    ``nn.Linear(x_num * hidden_dim, hidden_dim)`` (``linear``) -- upstream's layout. Use it for
    integer observations such as FrozenLake's state index.

    Input: an integer tensor ``[*B, x_num]`` -> ``[*B, hidden_dim]``. With ``x_num == 1`` a
    1-D input ``[B]`` is read as ``B`` samples (as upstream). Indices outside ``[0, x_dim)``
    and non-integer tensors raise before the lookup.

    Args:
        x_dim: number of distinct values of each feature.
        x_num: number of features per sample.
        hidden_dim: embedding and output size.

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import DiscreteEmbeddingEncoder
        >>> enc = DiscreteEmbeddingEncoder(x_dim=16, x_num=1, hidden_dim=8)
        >>> enc(torch.tensor([0, 5, 15])).shape  # three FrozenLake states
        torch.Size([3, 8])
        >>> list(enc.state_dict())
        ['embedding.weight', 'linear.weight', 'linear.bias']
    """

    def __init__(self, x_dim: int, x_num: int, hidden_dim: int) -> None:
        super().__init__()
        owner = type(self).__name__
        self.x_dim = check_int(owner, "x_dim", x_dim)
        self.x_num = check_int(owner, "x_num", x_num)
        self.hidden_dim = check_int(owner, "hidden_dim", hidden_dim)
        self.embedding = nn.Embedding(self.x_dim, self.hidden_dim)
        self.linear = nn.Linear(self.hidden_dim * self.x_num, self.hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner = type(self).__name__
        check_tensor_input(owner, x, integer=True)
        if self.x_num == 1 and x.dim() == 1:
            x = x.unsqueeze(-1)
        if x.dim() == 0 or x.shape[-1] != self.x_num:
            raise ValueError(
                f"{owner}: input shape {tuple(x.shape)} must end with x_num={self.x_num}"
            )
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.x_dim):
            raise ValueError(
                f"{owner}: input values must lie in [0, x_dim={self.x_dim}), got values in "
                f"[{int(x.min())}, {int(x.max())}]"
            )
        return self.linear(self.embedding(x).flatten(start_dim=-2))


register_encoder(IdentityEncoder, "identity")
register_encoder(TensorDictConcatenateEncoder)
register_encoder(GaussianFourierProjectionEncoder)
register_encoder(DiscreteEmbeddingEncoder)
