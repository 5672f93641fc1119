"""Bad inputs to the Q/V networks: a clear error naming the input, before any work is done."""

import numpy as np
import pytest
import torch
from easydict import EasyDict

from grl_torchrl import (
    DoubleQNetwork,
    DoubleVNetwork,
    EnsembleQNetwork,
    EnsembleVNetwork,
    OneShotValueFunction,
    QNetwork,
    VNetwork,
)

S, A = 3, 2
Q_CFG = {
    "backbone": {
        "type": "ConcatenateMLP",
        "args": {"hidden_sizes": [S + A, 8], "output_size": 1, "activation": "relu"},
    }
}
V_CFG = {
    "backbone": {
        "type": "MultiLayerPerceptron",
        "args": {"hidden_sizes": [S, 8], "output_size": 1, "activation": "relu"},
    }
}
Q_NETS = {
    "QNetwork": lambda: QNetwork(Q_CFG),
    "DoubleQNetwork": lambda: DoubleQNetwork(Q_CFG),
    "EnsembleQNetwork": lambda: EnsembleQNetwork(Q_CFG, num_heads=3),
}
V_NETS = {
    "VNetwork": lambda: VNetwork(V_CFG),
    "DoubleVNetwork": lambda: DoubleVNetwork(V_CFG),
    "EnsembleVNetwork": lambda: EnsembleVNetwork(V_CFG, num_heads=3),
    "OneShotValueFunction": lambda: OneShotValueFunction({"DoubleVNetwork": V_CFG}),
}

MISMATCHED = [
    ((6, A), (3, 2, S)),  # different batch sizes and ranks
    ((5, 1, A), (5, S)),  # an extra dim on one side only
    ((4, A), (5, S)),  # different batch sizes
]


@pytest.mark.parametrize("name", list(Q_NETS))
@pytest.mark.parametrize("act_shape, obs_shape", MISMATCHED)
def test_q_batch_mismatch_raises_naming_inputs(name, act_shape, obs_shape):
    q = Q_NETS[name]()
    with pytest.raises(ValueError, match=r"batch dims.*action \[.*state \["):
        q(torch.randn(*act_shape), torch.randn(*obs_shape))


@pytest.mark.parametrize("name", ["DoubleQNetwork", "EnsembleQNetwork"])
def test_compute_heads_checks_batches_too(name):
    with pytest.raises(ValueError, match="batch dims"):
        Q_NETS[name]().compute_double_q(torch.randn(4, A), torch.randn(5, S))


def test_v_condition_batch_mismatch():
    cfg = {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {"hidden_sizes": [S + 2, 8], "output_size": 1, "activation": "relu"},
        },
        "condition_encoder": {"type": "identity", "args": {}},
    }
    for v in (VNetwork(cfg), DoubleVNetwork(cfg)):
        with pytest.raises(ValueError, match=r"state \[4, 3\], condition \[2, 2\]"):
            v(torch.randn(4, S), torch.randn(2, 2))


@pytest.mark.parametrize("name", list(Q_NETS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_dtypes_are_cast_to_the_network_dtype(name, dtype):
    q = Q_NETS[name]()
    obs, act = torch.randn(4, S), torch.randn(4, A)
    expected = q(act.to(dtype).float(), obs.to(dtype).float())
    out = q(act.to(dtype), obs.to(dtype))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("name", list(Q_NETS))
def test_numpy_inputs_are_accepted(name):
    q = Q_NETS[name]()
    obs, act = np.random.randn(4, S), np.random.randn(4, A)  # float64, as gymnasium gives
    torch.testing.assert_close(
        q(act, obs), q(torch.as_tensor(act).float(), torch.as_tensor(obs).float())
    )


@pytest.mark.parametrize("name", list(Q_NETS))
def test_integer_input_to_identity_encoder_is_a_type_error(name):
    with pytest.raises(TypeError, match=r"input 'state' has dtype torch.int64.*float32"):
        Q_NETS[name]()(torch.randn(4, A), torch.randint(3, (4, S)))


@pytest.mark.parametrize("name", list(V_NETS))
def test_zero_dim_state_is_named(name):
    with pytest.raises(ValueError, match="input 'state' is a 0-d tensor"):
        V_NETS[name]()(torch.tensor(1.0))


@pytest.mark.parametrize("name", list(V_NETS))
def test_non_tensor_state_is_named(name):
    with pytest.raises(TypeError, match="input 'state' must be a tensor.*got list"):
        V_NETS[name]()([[0.0, 1.0, 2.0]])


@pytest.mark.parametrize(
    "num_heads, error",
    [(True, TypeError), (1.5, TypeError), ("2", TypeError), (0, ValueError), (-1, ValueError)],
)
def test_num_heads_is_validated(num_heads, error):
    with pytest.raises(error, match=f"num_heads must be a positive int, got {num_heads!r}"):
        EnsembleQNetwork(Q_CFG, num_heads=num_heads)


def test_reduction_is_validated():
    with pytest.raises(ValueError, match="reduction must be one of"):
        EnsembleVNetwork(V_CFG, reduction="median")


@pytest.mark.parametrize("cls", [QNetwork, VNetwork, DoubleQNetwork, DoubleVNetwork])
def test_config_must_be_a_mapping(cls):
    with pytest.raises(TypeError, match="config must be a dict or EasyDict, got NoneType"):
        cls(None)


def test_one_shot_config_errors_agree_with_the_others():
    with pytest.raises(TypeError, match="config must be a dict or EasyDict, got NoneType"):
        OneShotValueFunction(None)
    with pytest.raises(ValueError, match="'DoubleVNetwork' entry"):
        OneShotValueFunction(EasyDict({"v_alpha": 1.0}))


def test_v_loss_target_errors():
    ov = OneShotValueFunction({"DoubleVNetwork": V_CFG})
    with pytest.raises(ValueError, match=r"value has shape \(4, 2\), expected \(4, 1\)"):
        ov.v_loss(torch.randn(4, S), torch.randn(4, 2))
    with pytest.raises(TypeError, match="value must be a tensor"):
        ov.v_loss(torch.randn(4, S), [1.0] * 4)


@pytest.mark.parametrize("name", list(Q_NETS))
def test_complex_input_is_a_type_error_not_a_silent_real_part(name):
    state = torch.randn(4, S, dtype=torch.complex64)
    with pytest.raises(TypeError, match=r"input 'state' has dtype torch.complex64"):
        Q_NETS[name]()(torch.randn(4, A), state)
