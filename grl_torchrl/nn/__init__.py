"""Building blocks for the value networks: registries, activations, backbones, encoders."""

from grl_torchrl.nn.activations import get_activation
from grl_torchrl.nn.backbones import ConcatenateMLP, MultiLayerPerceptron
from grl_torchrl.nn.encoders import (
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

__all__ = [
    "ConcatenateMLP",
    "GaussianFourierProjectionEncoder",
    "IdentityEncoder",
    "MultiLayerPerceptron",
    "TensorDictConcatenateEncoder",
    "build_block",
    "get_activation",
    "get_encoder",
    "get_module",
    "register_encoder",
    "register_module",
]
