import pytest
import torch
from tensordict import TensorDict
from torch import nn

from grl_torchrl import (
    DoubleQNetwork,
    DoubleVNetwork,
    EnsembleQNetwork,
    EnsembleVNetwork,
    OneShotValueFunction,
    QNetwork,
    VNetwork,
)
from grl_torchrl.nn import register_module

S, A = 3, 2


class ProductBackbone(nn.Module):
    """Not an MLP: the ensemble must fall back to vmap over functional calls."""

    def __init__(self, action_dim, state_dim):
        super().__init__()
        self.action = nn.Linear(action_dim, 4)
        self.state = nn.Linear(state_dim, 4)

    def forward(self, action, state):
        return (self.action(action) * self.state(state)).sum(-1, keepdim=True)


register_module(ProductBackbone, "test_ensemble_product")


def q_cfg(**args):
    base = {"hidden_sizes": [S + A, 8, 8], "output_size": 1, "activation": "relu"}
    return {"backbone": {"type": "ConcatenateMLP", "args": {**base, **args}}}


CONFIGS = {
    "mlp": q_cfg(),
    "layernorm": q_cfg(layernorm=True, final_activation="tanh"),
    "fourier_encoder": {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {"hidden_sizes": [A + 4 * S, 8], "output_size": 1, "activation": "silu"},
        },
        "state_encoder": {
            "type": "GaussianFourierProjectionEncoder",
            "args": {"embed_dim": 4, "x_shape": [S], "scale": 0.3},
        },
    },
    "product": {
        "backbone": {"type": "test_ensemble_product", "args": {"action_dim": A, "state_dim": S}}
    },
}


def per_head_networks(ens, cls):
    """Plain single-head networks holding copies of each head's parameters."""
    nets = []
    for i in range(ens.num_heads):
        net = cls(ens.config)
        for name, p in ens.stacked.named_parameters():
            net.model.get_parameter(name).data.copy_(p[i])
        nets.append(net)
    return nets


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("num_heads", [2, 5])
def test_batched_pass_equals_heads_one_by_one(name, num_heads):
    torch.manual_seed(0)
    ens = EnsembleQNetwork(CONFIGS[name], num_heads=num_heads, reduction="none")
    singles = per_head_networks(ens, QNetwork)
    obs, act = torch.randn(4, 3, S), torch.randn(4, 3, A)
    heads = ens.compute_heads(act, obs)
    assert heads.shape == (num_heads, 4, 3, 1)
    expected = torch.stack([q(act, obs) for q in singles])
    torch.testing.assert_close(heads, expected)
    torch.testing.assert_close(ens(act, obs), expected.squeeze(-1).movedim(0, -1))
    # gradients of a head-weighted loss reach the right slices
    weights = torch.arange(1.0, num_heads + 1).view(-1, 1, 1, 1)
    (heads * weights).sum().backward()
    for i, q in enumerate(singles):
        (q(act, obs) * (i + 1)).sum().backward()
    for pname, p in ens.stacked.named_parameters():
        if not p.requires_grad:
            continue
        for i, q in enumerate(singles):
            torch.testing.assert_close(p.grad[i], q.model.get_parameter(pname).grad)


def test_heads_are_independently_initialised_and_reductions():
    ens = EnsembleQNetwork(q_cfg(), num_heads=3, reduction="mean")
    w = ens.stacked.backbone.model.model.linear0.weight
    assert not torch.equal(w[0], w[1])
    obs, act = torch.randn(6, S), torch.randn(6, A)
    all_heads = ens.compute_heads(act, obs)
    torch.testing.assert_close(ens(act, obs), all_heads.mean(0))
    ens.reduction = "max"
    torch.testing.assert_close(ens(act, obs), all_heads.max(0).values)
    ens.reduction = "min"
    torch.testing.assert_close(ens(act, obs), all_heads.min(0).values)
    torch.testing.assert_close(ens.compute_mininum_q(act, obs), all_heads.min(0).values)
    with pytest.raises(ValueError, match="reduction"):
        EnsembleQNetwork(q_cfg(), reduction="median")
    with pytest.raises(ValueError, match="num_heads"):
        EnsembleVNetwork({"backbone": q_cfg()["backbone"]}, num_heads=0)


def test_double_q_is_two_head_min_ensemble():
    dq = DoubleQNetwork(q_cfg())
    assert isinstance(dq, EnsembleQNetwork) and dq.num_heads == 2 and dq.reduction == "min"
    obs, act = torch.randn(5, S), torch.randn(5, A)
    q1, q2 = dq.compute_double_q(act, obs)
    torch.testing.assert_close(dq(act, obs), torch.min(q1, q2))
    torch.testing.assert_close(dq.compute_mininum_q(act, obs), torch.min(q1, q2))
    td = dq(TensorDict({"observation": obs, "action": act}, [5]))
    torch.testing.assert_close(td["state_action_value"], torch.min(q1, q2))
    assert dq(observation=obs, action=act).shape == (5, 1)


def test_heads_are_independent_copies_of_each_head():
    dq = DoubleQNetwork(q_cfg())
    heads = dq.heads
    own = {id(p) for p in dq.parameters()}
    assert all(isinstance(h, QNetwork) for h in heads)
    for h in heads:
        # leaves of their own: a loss stacks them into parameters it owns
        assert not own & {id(p) for p in h.parameters()}
        assert all(p.is_leaf for p in h.parameters())
        assert h.out_keys == ["state_action_value"] and h.in_keys == dq.in_keys
    obs, act = torch.randn(5, S), torch.randn(5, A)
    q1, q2 = dq.compute_double_q(act, obs)
    td = TensorDict({"observation": obs, "action": act}, [5])
    torch.testing.assert_close(heads[0](td.clone())["state_action_value"], q1)
    torch.testing.assert_close(heads[1](td.clone())["state_action_value"], q2)
    with torch.no_grad():
        heads[0].model.backbone.model.model.linear0.weight.add_(1.0)
    torch.testing.assert_close(dq.compute_double_q(act, obs)[0], q1)  # a copy, not a view


def test_upstream_head_paths_share_storage():
    dq = DoubleQNetwork(q_cfg())
    obs, act = torch.randn(5, S), torch.randn(5, A)
    q1, q2 = dq.compute_double_q(act, obs)
    assert sorted(dq.model.keys()) == ["q1", "q2"]
    torch.testing.assert_close(dq.model.q1(act, obs), q1)
    torch.testing.assert_close(dq.model.q2(act, obs), q2)
    w = dq.stacked.backbone.model.model.linear0.weight
    assert dq.model.q2.model.backbone.model.model.linear0.weight.data_ptr() == w[1].data_ptr()
    with torch.no_grad():
        w[1].mul_(2.0)
    torch.testing.assert_close(dq.model.q2(act, obs), dq.compute_double_q(act, obs)[1])
    assert not any(k.startswith("model.") for k in dq.state_dict())  # no second copy saved
    dv = DoubleVNetwork(
        {
            "backbone": {
                "type": "MultiLayerPerceptron",
                "args": {"hidden_sizes": [S, 8], "output_size": 1, "activation": "relu"},
            }
        }
    )
    s = torch.randn(4, S)
    torch.testing.assert_close(dv.model.v1(s), dv.compute_double_v(s)[0])


def _mlp_layer(gen, n_in, n_out, prefix):
    return {
        f"{prefix}.weight": torch.randn(n_out, n_in, generator=gen),
        f"{prefix}.bias": torch.randn(n_out, generator=gen),
    }


def test_load_upstream_double_q_checkpoint():
    # Keys written by hand in GenerativeRL's layout (DoubleQNetwork > QNetwork > ConcatenateMLP).
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for head in ("q1", "q2"):
        base = f"model.{head}.model.backbone.model.model"
        sd |= _mlp_layer(gen, S + A, 8, f"{base}.linear0")
        sd |= _mlp_layer(gen, 8, 1, f"{base}.linear1")
    cfg = {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {"hidden_sizes": [S + A, 8], "output_size": 1, "activation": "relu"},
        }
    }
    dq = DoubleQNetwork(cfg)
    dq.load_state_dict(sd)
    obs, act = torch.randn(7, S), torch.randn(7, A)
    x = torch.cat([act, obs], -1)  # upstream concatenates (action, state)
    outs = []
    for head in ("q1", "q2"):
        base = f"model.{head}.model.backbone.model.model"
        h = torch.relu(x @ sd[f"{base}.linear0.weight"].T + sd[f"{base}.linear0.bias"])
        outs.append(h @ sd[f"{base}.linear1.weight"].T + sd[f"{base}.linear1.bias"])
    q1, q2 = dq.compute_double_q(act, obs)
    torch.testing.assert_close(q1, outs[0])
    torch.testing.assert_close(q2, outs[1])
    torch.testing.assert_close(dq(act, obs), torch.minimum(*outs))
    # our own layout round-trips
    other = DoubleQNetwork(cfg)
    other.load_state_dict(dq.state_dict())
    torch.testing.assert_close(other(act, obs), dq(act, obs))
    # an incomplete upstream checkpoint is refused with the missing keys named
    broken = dict(sd)
    broken.pop("model.q2.model.backbone.model.model.linear1.bias")
    with pytest.raises(KeyError, match="model.q2.model.backbone.model.model.linear1.bias"):
        DoubleQNetwork(cfg).load_state_dict(broken)


def test_load_upstream_one_shot_value_checkpoint():
    gen = torch.Generator().manual_seed(1)
    sd = {}
    for top in ("v", "v_target"):
        for head in ("v1", "v2"):
            base = f"{top}.model.{head}.model.backbone.model"
            sd |= _mlp_layer(gen, S, 8, f"{base}.linear0")
            sd |= _mlp_layer(gen, 8, 1, f"{base}.linear1")
    cfg = {
        "v_alpha": 1.0,
        "DoubleVNetwork": {
            "backbone": {
                "type": "MultiLayerPerceptron",
                "args": {"hidden_sizes": [S, 8], "output_size": 1, "activation": "relu"},
            }
        },
    }
    ov = OneShotValueFunction(cfg)
    ov.load_state_dict(sd)
    s = torch.randn(5, S)

    def hand(top, head):
        base = f"{top}.model.{head}.model.backbone.model"
        h = torch.relu(s @ sd[f"{base}.linear0.weight"].T + sd[f"{base}.linear0.bias"])
        return h @ sd[f"{base}.linear1.weight"].T + sd[f"{base}.linear1.bias"]

    torch.testing.assert_close(ov(s), torch.minimum(hand("v", "v1"), hand("v", "v2")))
    v1t, v2t = ov.v_target.compute_double_v(s)
    torch.testing.assert_close(v1t, hand("v_target", "v1"))
    torch.testing.assert_close(v2t, hand("v_target", "v2"))
    assert not any(p.requires_grad for p in ov.v_target.parameters())
    # the DoubleVNetwork alone loads its own upstream layout too
    dv = DoubleVNetwork(cfg["DoubleVNetwork"])
    dv.load_state_dict({k[2:]: t for k, t in sd.items() if k.startswith("v.")})
    torch.testing.assert_close(dv(s), ov(s))


def test_vnetwork_single_loads_upstream_layout_directly():
    v = VNetwork(
        {
            "backbone": {
                "type": "MultiLayerPerceptron",
                "args": {"hidden_sizes": [S, 4], "output_size": 1, "activation": "relu"},
            }
        }
    )
    keys = sorted(v.state_dict())
    assert keys == [
        "model.backbone.model.linear0.bias",
        "model.backbone.model.linear0.weight",
        "model.backbone.model.linear1.bias",
        "model.backbone.model.linear1.weight",
    ]


def test_ensemble_deepcopy_and_independent_target():
    import copy

    dq = DoubleQNetwork(CONFIGS["fourier_encoder"])
    tgt = copy.deepcopy(dq)
    obs, act = torch.randn(3, S), torch.randn(3, A)
    torch.testing.assert_close(tgt(act, obs), dq(act, obs))
    with torch.no_grad():
        dq.stacked.backbone.model.model.linear0.weight.add_(1.0)
    assert not torch.allclose(tgt(act, obs), dq(act, obs))


def test_ensemble_bad_inputs_are_named():
    dq = DoubleQNetwork(q_cfg())
    with pytest.raises(ValueError, match="expects 5"):
        dq(torch.randn(2, A), torch.randn(2, S + 2))
    with pytest.raises(KeyError, match="no key 'observation'"):
        dq(TensorDict({"action": torch.randn(2, A)}, [2]))
    with pytest.raises(ValueError, match="no 'backbone'"):
        DoubleVNetwork({})


def test_scaled_mlp_heads_apply_the_scale():
    # upstream's MultiLayerPerceptron(scale=...) multiplies the output: every path applies it
    cfg = {
        "backbone": {
            "type": "MultiLayerPerceptron",
            "args": {"hidden_sizes": [S, 8], "output_size": 1, "activation": "relu", "scale": 10.0},
        }
    }
    dv = DoubleVNetwork(cfg)
    x = torch.randn(5, S)
    mlp = dv.stacked.backbone.model
    w0, b0, w1, b1 = (
        t[0] for t in (mlp.linear0.weight, mlp.linear0.bias, mlp.linear1.weight, mlp.linear1.bias)
    )
    expected = 10 * (torch.relu(x @ w0.T + b0) @ w1.T + b1)
    torch.testing.assert_close(dv.compute_double_v(x)[0], expected)
    torch.testing.assert_close(dv.model.v1(x), expected)
