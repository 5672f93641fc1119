"""Building blocks for the value networks: registries, activations, backbones, encoders."""

from grl_torchrl.nn.activations import Square, Swish, get_activation
from grl_torchrl.nn.backbones import ConcatenateMLP, MultiLayerPerceptron
from grl_torchrl.nn.encoders import (
    DiscreteEmbeddingEncoder,
    GaussianFourierProjectionEncoder,
    IdentityEncoder,
    TensorDictConcatenateEncoder,
)
from grl_torchrl.nn.registry import (
    build_block,
    get_encoder,
    get_module,
    register_encoder,
    register_module,
)
from grl_torchrl.nn.time_encoders import (
    ExponentialFourierProjectionTimeEncoder,
    GaussianFourierProjectionTimeEncoder,
    SinusoidalPosEmb,
)

__all__ = [
    "ConcatenateMLP",
    "DiscreteEmbeddingEncoder",
    "ExponentialFourierProjectionTimeEncoder",
    "GaussianFourierProjectionEncoder",
    "GaussianFourierProjectionTimeEncoder",
    "IdentityEncoder",
    "MultiLayerPerceptron",
    "SinusoidalPosEmb",
    "Square",
    "Swish",
    "TensorDictConcatenateEncoder",
    "build_block",
    "get_activation",
    "get_encoder",
    "get_module",
    "register_encoder",
    "register_module",
]
