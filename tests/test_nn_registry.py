import pytest
import torch
from torch import nn

from grl_torchrl.nn import (
    ConcatenateMLP,
    MultiLayerPerceptron,
    get_activation,
    get_encoder,
    get_module,
    register_encoder,
    register_module,
)


class _Dummy(nn.Module):
    def forward(self, x):
        return x


def test_lookup_is_case_insensitive():
    assert get_module("concatenatemlp") is ConcatenateMLP
    assert get_module("MULTILAYERPERCEPTRON") is MultiLayerPerceptron
    assert get_encoder("tensordictconcatenateencoder").__name__ == "TensorDictConcatenateEncoder"


def test_register_taken_name_raises_unless_override():
    register_module(_Dummy, "test_registry_dummy")
    with pytest.raises(KeyError, match="already registered"):
        register_module(_Dummy, "Test_Registry_Dummy")

    class Other(_Dummy):
        pass

    register_module(Other, "TEST_REGISTRY_DUMMY", override=True)
    assert get_module("test_registry_dummy") is Other


def test_register_default_name_is_class_name():
    class RegistryDefaultNameEncoder(_Dummy):
        pass

    register_encoder(RegistryDefaultNameEncoder)
    assert get_encoder("registrydefaultnameencoder") is RegistryDefaultNameEncoder
    with pytest.raises(KeyError):
        register_encoder(RegistryDefaultNameEncoder)


def test_unknown_names_list_known_ones():
    with pytest.raises(ValueError, match="known types: .*concatenatemlp.*multilayerperceptron"):
        get_module("NoSuchBackbone")
    with pytest.raises(ValueError, match="tensordictconcatenateencoder"):
        get_encoder("NoSuchEncoder")
    with pytest.raises(ValueError, match="known activations: .*relu"):
        get_activation("nope")


@pytest.mark.parametrize(
    "name, fn",
    [
        ("relu", torch.relu),
        ("silu", nn.functional.silu),
        ("mish", nn.functional.mish),
        ("tanh", torch.tanh),
        ("gelu", nn.functional.gelu),
        ("softplus", nn.functional.softplus),
        ("elu", nn.functional.elu),
        ("leaky_relu", nn.functional.leaky_relu),
        ("swish", lambda x: x / (1 + torch.exp(-x))),  # beta starts at 1
        ("square", lambda x: x * x),
        ("identity", lambda x: x),
    ],
)
def test_activations_match_functional(name, fn):
    x = torch.linspace(-3, 3, 13)
    act = get_activation(name.upper())
    torch.testing.assert_close(act(x), fn(x))
    assert act is not get_activation(name)


def test_swish_beta_is_a_trainable_parameter_per_instance():
    act = get_activation("Swish")
    assert [n for n, p in act.named_parameters() if p.requires_grad] == ["beta"]
    with torch.no_grad():
        act.beta.fill_(3.0)
    x = torch.linspace(-2, 2, 9)
    torch.testing.assert_close(act(x), x / (1 + torch.exp(-3.0 * x)))
    assert get_activation("swish").beta.item() == 1.0  # a new instance, its own beta
    assert not list(get_activation("square").parameters())
