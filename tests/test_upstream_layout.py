"""Writing GenerativeRL's per-head checkpoint layout, read back by modules built like upstream's."""

import pytest
import torch
from torch import nn

from grl_torchrl import (
    DoubleQNetwork,
    DoubleVNetwork,
    EnsembleQNetwork,
    OneShotValueFunction,
    QNetwork,
    VNetwork,
    to_upstream_state_dict,
)

S, A = 3, 2
Q_CFG = {
    "backbone": {
        "type": "ConcatenateMLP",
        "args": {"hidden_sizes": [S + A, 8, 8], "output_size": 1, "activation": "relu"},
    }
}
V_CFG = {
    "backbone": {
        "type": "MultiLayerPerceptron",
        "args": {"hidden_sizes": [S, 8], "output_size": 1, "activation": "silu"},
    }
}


class UpstreamDouble(nn.Module):
    """Upstream's DoubleQNetwork / DoubleVNetwork layout: ``model`` holds one module per head.

    Our single ``QNetwork`` / ``VNetwork`` already have upstream's single-network layout
    (``model.{state,action}_encoder`` and ``model.backbone``), checked in
    test_value_networks_ensemble.py against keys written by hand.
    """

    def __init__(self, single, cfg, tag):
        super().__init__()
        self.model = nn.ModuleDict({f"{tag}1": single(cfg), f"{tag}2": single(cfg)})


class UpstreamOneShot(nn.Module):
    def __init__(self):
        super().__init__()
        self.v = UpstreamDouble(VNetwork, V_CFG, "v")
        self.v_target = UpstreamDouble(VNetwork, V_CFG, "v")


class UpstreamStyleCritic(nn.Module):
    """A whole algorithm critic as upstream's IQL-style algorithms hold one: q, q_target, v."""

    def __init__(self, double_q, v):
        super().__init__()
        self.q = double_q(Q_CFG)
        self.q_target = double_q(Q_CFG)
        self.v = v(V_CFG)


def upstream_q(model, act, obs):
    return torch.min(model.model.q1(act, obs), model.model.q2(act, obs))


@pytest.mark.parametrize(
    "ours, upstream",
    [
        (lambda: DoubleQNetwork(Q_CFG), lambda: UpstreamDouble(QNetwork, Q_CFG, "q")),
        (lambda: EnsembleQNetwork(Q_CFG, 2), lambda: UpstreamDouble(QNetwork, Q_CFG, "q")),
        (lambda: DoubleVNetwork(V_CFG), lambda: UpstreamDouble(VNetwork, V_CFG, "v")),
        (lambda: OneShotValueFunction({"v_alpha": 1.0, "DoubleVNetwork": V_CFG}), UpstreamOneShot),
        (
            lambda: UpstreamStyleCritic(DoubleQNetwork, VNetwork),
            lambda: UpstreamStyleCritic(lambda c: UpstreamDouble(QNetwork, c, "q"), VNetwork),
        ),
    ],
    ids=["double_q", "ensemble_q2", "double_v", "one_shot", "whole_critic"],
)
def test_export_loads_strictly_upstream_and_round_trips(ours, upstream):
    torch.manual_seed(0)
    mine, theirs = ours(), upstream()
    exported = to_upstream_state_dict(mine)
    assert set(exported) == set(theirs.state_dict())
    theirs.load_state_dict(exported, strict=True)
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(value, exported[key], rtol=0, atol=0)
    # upstream -> ours -> upstream is exact
    torch.manual_seed(1)
    source = upstream()
    again = ours()
    again.load_state_dict(source.state_dict(), strict=True)
    back = to_upstream_state_dict(again)
    assert set(back) == set(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(back[key], value), key


def test_exported_heads_compute_what_ours_compute():
    dq = DoubleQNetwork(Q_CFG)
    up = UpstreamDouble(QNetwork, Q_CFG, "q")
    up.load_state_dict(to_upstream_state_dict(dq))
    obs, act = torch.randn(6, S), torch.randn(6, A)
    q1, q2 = dq.compute_double_q(act, obs)
    torch.testing.assert_close(up.model.q1(act, obs), q1)
    torch.testing.assert_close(up.model.q2(act, obs), q2)
    torch.testing.assert_close(upstream_q(up, act, obs), dq(act, obs))


def test_export_copies_do_not_alias_the_live_weights():
    dq = DoubleQNetwork(Q_CFG)
    sd = to_upstream_state_dict(dq)
    key = "model.q1.model.backbone.model.model.linear0.weight"
    before = sd[key].clone()
    with torch.no_grad():
        dq.stacked.backbone.model.model.linear0.weight.add_(1.0)
    assert torch.equal(sd[key], before)


def test_mis_shaped_upstream_head_is_named():
    up = UpstreamDouble(QNetwork, Q_CFG, "q")
    sd = up.state_dict()
    key = "model.q2.model.backbone.model.model.linear1.weight"
    sd[key] = torch.zeros(8, 7)
    with pytest.raises(ValueError, match=rf"{key}.*\[8, 7\], expected \[8, 8\]"):
        DoubleQNetwork(Q_CFG).load_state_dict(sd)
