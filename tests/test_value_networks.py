import pytest
import torch
from easydict import EasyDict
from tensordict import TensorDict

from grl_torchrl import DoubleVNetwork, OneShotValueFunction, QNetwork, VNetwork

S, A, C = 3, 2, 4


def q_cfg(extra=0, **kw):
    return {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {"hidden_sizes": [S + A + extra, 8], "output_size": 1, "activation": "relu"},
        },
        **kw,
    }


def v_cfg(in_size=S, backbone="MultiLayerPerceptron", **kw):
    return {
        "backbone": {
            "type": backbone,
            "args": {"hidden_sizes": [in_size, 8], "output_size": 1, "activation": "tanh"},
        },
        **kw,
    }


def hand(seq, x, act):
    x = act(x @ seq.linear0.weight.T + seq.linear0.bias)
    return x @ seq.linear1.weight.T + seq.linear1.bias


def test_q_three_call_styles_and_hand_computation():
    q = QNetwork(q_cfg())
    assert q.in_keys == ["observation", "action"] and q.out_keys == ["state_action_value"]
    obs, act = torch.randn(5, S), torch.randn(5, A)
    expected = hand(q.model["backbone"].model.model, torch.cat([act, obs], -1), torch.relu)
    torch.testing.assert_close(q(act, obs), expected)
    torch.testing.assert_close(q(observation=obs, action=act), expected)
    torch.testing.assert_close(q(action=act, state=obs), expected)
    td = TensorDict({"observation": obs, "action": act}, [5])
    assert q(td) is td
    torch.testing.assert_close(td["state_action_value"], expected)


def test_extra_leading_batch_dims():
    q = QNetwork(q_cfg())
    obs, act = torch.randn(4, 6, S), torch.randn(4, 6, A)
    out = q(act, obs)
    assert out.shape == (4, 6, 1)
    torch.testing.assert_close(out[2, 3], q(act[2, 3:4], obs[2, 3:4])[0])
    v = VNetwork(v_cfg())
    assert v(TensorDict({"observation": obs}, [4, 6]))["state_value"].shape == (4, 6, 1)


def test_custom_keys_and_condition():
    cfg = q_cfg(extra=C, condition_encoder={"type": "identity", "args": {}})
    q = QNetwork(cfg, in_keys=["obs", "act", "goal"], out_keys=[("critic", "q")])
    assert q.in_keys == ["obs", "act", "goal"]
    assert QNetwork(cfg).in_keys == ["observation", "action", "condition"]
    obs, act, goal = torch.randn(5, S), torch.randn(5, A), torch.randn(5, C)
    td = q(TensorDict({"obs": obs, "act": act, "goal": goal}, [5]))
    expected = hand(q.model["backbone"].model.model, torch.cat([act, obs, goal], -1), torch.relu)
    torch.testing.assert_close(td["critic", "q"], expected)
    torch.testing.assert_close(q(act, obs, goal), expected)
    with pytest.raises(ValueError, match="in_keys must give 3 keys"):
        QNetwork(cfg, in_keys=["obs", "act"])


def test_v_condition_upstream_and_td():
    cfg = v_cfg(S + C, "ConcatenateMLP", condition_encoder={"type": "identity", "args": {}})
    v = VNetwork(cfg)
    assert v.in_keys == ["observation", "condition"] and v.out_keys == ["state_value"]
    s, c = torch.randn(5, S), torch.randn(5, C)
    expected = hand(v.model["backbone"].model.model, torch.cat([s, c], -1), torch.tanh)
    torch.testing.assert_close(v(s, condition=c), expected)
    torch.testing.assert_close(
        v(TensorDict(observation=s, condition=c, batch_size=[5]))["state_value"], expected
    )


def test_dict_observation_through_encoder():
    cfg = v_cfg(5, state_encoder={"type": "TensorDictConcatenateEncoder", "args": {}})
    v = VNetwork(cfg)
    pos, vel = torch.randn(6, 2), torch.randn(6, 3)
    state = TensorDict({"velocity": vel, "position": pos}, [6])
    # upstream concatenates in the TensorDict's insertion order (velocity first here)
    expected = hand(v.model["backbone"].model, torch.cat([vel, pos], -1), torch.tanh)
    torch.testing.assert_close(v(state), expected)  # upstream style: the state itself
    swapped = hand(v.model["backbone"].model, torch.cat([pos, vel], -1), torch.tanh)
    torch.testing.assert_close(v({"position": pos, "velocity": vel}), swapped)
    td = v(TensorDict({"observation": state}, [6]))  # TorchRL style: nested observation
    torch.testing.assert_close(td["state_value"], expected)
    dq_cfg = q_cfg(extra=0, state_encoder={"type": "TensorDictConcatenateEncoder", "args": {}})
    dq_cfg["backbone"]["args"]["hidden_sizes"] = [A + 5, 8]
    q = QNetwork(dq_cfg)
    assert q(torch.randn(6, A), state).shape == (6, 1)


def test_dict_and_easydict_configs_same_result():
    torch.manual_seed(1)
    a = QNetwork(q_cfg())
    torch.manual_seed(1)
    b = QNetwork(EasyDict(q_cfg()))
    obs, act = torch.randn(3, S), torch.randn(3, A)
    torch.testing.assert_close(a(act, obs), b(act, obs))
    assert a.state_dict().keys() == b.state_dict().keys()


def test_bad_inputs():
    with pytest.raises(ValueError, match="no 'backbone'"):
        QNetwork({"state_encoder": {"type": "identity", "args": {}}})
    with pytest.raises(ValueError, match="Unknown module type 'Nope'.*known types"):
        QNetwork({"backbone": {"type": "Nope", "args": {}}})
    with pytest.raises(ValueError, match="Unknown encoder type 'Nope'.*known types"):
        VNetwork(v_cfg(state_encoder={"type": "Nope", "args": {}}))
    q = QNetwork(q_cfg())
    with pytest.raises(ValueError, match="expects 5"):
        q(torch.randn(2, A), torch.randn(2, S + 1))
    with pytest.raises(KeyError, match="no key 'action'"):
        q(TensorDict({"observation": torch.randn(2, S)}, [2]))
    vc = VNetwork(
        v_cfg(S + C, "ConcatenateMLP", condition_encoder={"type": "identity", "args": {}})
    )
    with pytest.raises(KeyError, match="no key 'condition'"):
        vc(TensorDict({"observation": torch.randn(2, S)}, [2]))
    with pytest.raises(TypeError, match="unexpected input 'obs'"):
        q(obs=torch.randn(2, S), action=torch.randn(2, A))
    with pytest.raises(TypeError, match="missing input 'action'"):
        q(observation=torch.randn(2, S))


def test_double_v_condition_defaults_to_none():
    dv = DoubleVNetwork(v_cfg())
    s = torch.randn(4, S)
    v1, v2 = dv.compute_double_v(s)
    torch.testing.assert_close(dv(s), torch.minimum(v1, v2))
    torch.testing.assert_close(dv.compute_minimum_v(s), dv.compute_mininum_v(s, None))


def test_one_shot_value_function():
    cfg = EasyDict({"v_alpha": 0.7, "DoubleVNetwork": v_cfg()})
    ov = OneShotValueFunction(cfg)
    assert ov.v_alpha == 0.7 and ov.out_keys == ["state_value"]
    assert all(not p.requires_grad for p in ov.v_target.parameters())
    assert all(p.requires_grad for p in ov.v.parameters())
    for p, pt in zip(ov.v.parameters(), ov.v_target.parameters(), strict=True):
        torch.testing.assert_close(p, pt)
        assert p.data_ptr() != pt.data_ptr()
    s, y = torch.randn(6, S), torch.randn(6, 1)
    v1, v2 = ov.compute_double_v(s)
    torch.testing.assert_close(ov(s), torch.minimum(v1, v2))
    expected = 0.5 * (((v1 - y) ** 2).mean() + ((v2 - y) ** 2).mean())
    torch.testing.assert_close(ov.v_loss(s, y), expected)
    torch.testing.assert_close(ov.v_loss(s, y.squeeze(-1)), expected)  # [B] -> [B, 1]
    with pytest.raises(ValueError, match=r"shape \(6, 2\)"):
        ov.v_loss(s, torch.randn(6, 2))
    with pytest.raises(ValueError):
        ov.v_loss(s, torch.randn(1, 6))
    ov.v_loss(s, y).backward()
    assert all(p.grad is not None for p in ov.v.parameters())
    assert all(p.grad is None for p in ov.v_target.parameters())
    with pytest.raises(ValueError, match="DoubleVNetwork"):
        OneShotValueFunction(v_cfg())
