"""Encoders of a scalar (diffusion time, step index) into a feature vector, as upstream names them.

Each maps an input of shape ``[*B]`` to ``[*B, D]``; a 0-d input is read as a batch of one
(``[1, D]``) by the two encoders upstream defines that way.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from grl_torchrl.nn._checks import check_bool, check_int, check_real
from grl_torchrl.nn.encoders import check_tensor_input
from grl_torchrl.nn.registry import register_encoder

__all__ = [
    "ExponentialFourierProjectionTimeEncoder",
    "GaussianFourierProjectionTimeEncoder",
    "SinusoidalPosEmb",
]


class GaussianFourierProjectionTimeEncoder(nn.Module):
    """Random Fourier features of a time ``t``: ``[sin(t·W), cos(t·W)]``.

    ``W = 2π·scale·w`` with ``w ~ N(0, 1)`` of size ``embed_dim // 2``, drawn once and stored
    as the parameter ``W`` (trainable only with ``requires_grad=True``). Input ``[*B]`` ->
    output ``[*B, embed_dim]``; a 0-d ``t`` gives ``[1, embed_dim]`` (as upstream).

    Args:
        embed_dim: output size, an even int >= 2 (an odd size is rejected: upstream would
            silently return one feature less).
        scale: standard deviation of the frequencies (a finite number > 0).
        requires_grad: train ``W``.

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import GaussianFourierProjectionTimeEncoder
        >>> enc = GaussianFourierProjectionTimeEncoder(embed_dim=8)
        >>> enc(torch.rand(5)).shape, list(enc.state_dict()), enc.W.requires_grad
        (torch.Size([5, 8]), ['W'], False)
    """

    def __init__(self, embed_dim: int, scale: float = 30.0, requires_grad: bool = False) -> None:
        super().__init__()
        owner = type(self).__name__
        embed_dim = check_int(owner, "embed_dim", embed_dim, minimum=2, even=True)
        scale = check_real(owner, "scale", scale, positive=True)
        requires_grad = check_bool(owner, "requires_grad", requires_grad)
        self.W = nn.Parameter(
            torch.randn(embed_dim // 2) * scale * 2 * math.pi, requires_grad=requires_grad
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor_input(type(self).__name__, x)
        if x.dim() == 0:
            x = x.unsqueeze(0)
        proj = x.unsqueeze(-1) * self.W
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class ExponentialFourierProjectionTimeEncoder(nn.Module):
    """Sinusoidal time features at geometrically spaced frequencies, then a small MLP.

    With ``h = frequency_embedding_size // 2`` and frequencies
    ``f_i = exp(-ln(10000)·i/h)``, ``i = 0..h-1``, the features are
    ``[cos(t·f), sin(t·f)]`` (cosines first), plus one zero feature when
    ``frequency_embedding_size`` is odd; :meth:`timestep_embedding` computes them. ``mlp`` is
    ``Linear(frequency_embedding_size, hidden_size) -> SiLU -> Linear(hidden_size,
    hidden_size)`` (state-dict keys ``mlp.0.*`` and ``mlp.2.*``, as upstream). Input ``[*B]``
    -> output ``[*B, hidden_size]``; a 0-d ``t`` gives ``[1, hidden_size]`` (as upstream).

    Args:
        hidden_size: output size.
        frequency_embedding_size: number of sinusoidal features (an int >= 2).

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import ExponentialFourierProjectionTimeEncoder
        >>> enc = ExponentialFourierProjectionTimeEncoder(hidden_size=16)
        >>> enc(torch.arange(4.0)).shape
        torch.Size([4, 16])
        >>> list(enc.state_dict())
        ['mlp.0.weight', 'mlp.0.bias', 'mlp.2.weight', 'mlp.2.bias']
    """

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        owner = type(self).__name__
        hidden_size = check_int(owner, "hidden_size", hidden_size)
        self.frequency_embedding_size = check_int(
            owner, "frequency_embedding_size", frequency_embedding_size, minimum=2
        )
        self.mlp = nn.Sequential(
            nn.Linear(self.frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    @staticmethod
    def timestep_embedding(
        t: torch.Tensor, embed_dim: int, max_period: float = 10000
    ) -> torch.Tensor:
        """The ``embed_dim`` float32 sinusoidal features of ``t`` (``[*B]`` -> ``[*B, embed_dim]``).

        ``max_period`` sets the lowest frequency, ``1 / max_period``.
        """
        check_tensor_input("ExponentialFourierProjectionTimeEncoder", t)
        half = embed_dim // 2
        exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half
        freqs = torch.exp(-math.log(max_period) * exponent)
        if t.dim() == 0:
            t = t.unsqueeze(0)
        args = t.float().unsqueeze(-1) * freqs
        features = [torch.cos(args), torch.sin(args)]
        if embed_dim % 2:
            features.append(torch.zeros_like(args[..., :1]))
        return torch.cat(features, dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = self.timestep_embedding(t, self.frequency_embedding_size)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class SinusoidalPosEmb(nn.Module):
    """Transformer-style position features: ``[sin(x·f), cos(x·f)]``, no parameters.

    With ``h = dim // 2`` the frequencies are ``f_i = exp(-ln(10000)·i/(h-1))``,
    ``i = 0..h-1`` (from 1 down to 1/10000). Input ``[*B]`` -> output ``[*B, dim]``
    (upstream takes ``[B]`` only).

    Args:
        dim: output size, an even int >= 4 (two frequencies at least).

    Examples:
        >>> import torch
        >>> from grl_torchrl.nn import SinusoidalPosEmb
        >>> SinusoidalPosEmb(4)(torch.tensor([0.0, 1.0]))
        tensor([[0.0000e+00, 0.0000e+00, 1.0000e+00, 1.0000e+00],
                [8.4147e-01, 1.0000e-04, 5.4030e-01, 1.0000e+00]])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = check_int(type(self).__name__, "dim", dim, minimum=4, even=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor_input(type(self).__name__, x)
        half = self.dim // 2
        dtype = x.dtype if x.dtype.is_floating_point else torch.get_default_dtype()
        step = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=x.device, dtype=dtype) * -step)
        args = x.unsqueeze(-1) * freqs
        return torch.cat([args.sin(), args.cos()], dim=-1)


register_encoder(GaussianFourierProjectionTimeEncoder)
register_encoder(ExponentialFourierProjectionTimeEncoder)
register_encoder(SinusoidalPosEmb)
