"""Our critics inside TorchRL's losses: one optimisation step each, on small nets."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torchrl.data import Bounded
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal
from torchrl.objectives import CQLLoss, DDPGLoss, IQLLoss, SACLoss, SoftUpdate, TD3Loss

from grl_torchrl import DoubleQNetwork, EnsembleQNetwork, QNetwork, VNetwork

S, A, C, B = 3, 2, 2, 16
SPEC = Bounded(-1.0, 1.0, shape=(A,))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def q_cfg(extra=0, **kw):
    return {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {"hidden_sizes": [S + A + extra, 16], "output_size": 1, "activation": "relu"},
        },
        **kw,
    }


V_CFG = {
    "backbone": {
        "type": "MultiLayerPerceptron",
        "args": {"hidden_sizes": [S, 16], "output_size": 1, "activation": "relu"},
    }
}


def stochastic_actor():
    net = torch.nn.Sequential(
        MLP(in_features=S, out_features=2 * A, num_cells=[16]), NormalParamExtractor()
    )
    return ProbabilisticActor(
        TensorDictModule(net, ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=SPEC,
        distribution_class=TanhNormal,
        return_log_prob=True,
    )


def deterministic_actor():
    net = torch.nn.Sequential(MLP(in_features=S, out_features=A, num_cells=[16]), torch.nn.Tanh())
    return TensorDictModule(net, ["observation"], ["action"])


def batch(condition=False):
    done = torch.zeros(B, 1, dtype=torch.bool)
    td = TensorDict(
        {
            "observation": torch.randn(B, S),
            "action": torch.rand(B, A) * 2 - 1,
            "next": {
                "observation": torch.randn(B, S),
                "reward": torch.randn(B, 1),
                "done": done,
                "terminated": done.clone(),
                "truncated": done.clone(),
            },
        },
        [B],
    )
    if condition:
        td["condition"] = torch.randn(B, C)
        td["next", "condition"] = torch.randn(B, C)
    return td


def one_step(loss_module, critic_params, extra_params=(), td=None):
    """Backpropagates the summed losses, checks the critic gets finite non-zero gradients,
    takes one Adam step and checks the critic parameters moved."""
    params = {id(p): p for p in [*loss_module.parameters(), *extra_params]}
    optim = torch.optim.Adam(params.values(), lr=1e-2)
    losses = loss_module(batch() if td is None else td)
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    assert torch.isfinite(total)
    total.backward()
    critic_params = list(critic_params)
    assert critic_params
    for p in critic_params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert sum(p.grad.abs().sum() for p in critic_params) > 0
    before = [p.detach().clone() for p in critic_params]
    optim.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, critic_params, strict=True))
    return losses


def loss_params(td_params):
    return [p for p in td_params.values(True, True) if p.requires_grad]


def test_sac_with_qnetwork():
    loss = SACLoss(stochastic_actor(), qvalue_network=QNetwork(q_cfg()), action_spec=SPEC)
    SoftUpdate(loss, tau=0.05)
    one_step(loss, loss_params(loss.qvalue_network_params))


FOURIER_Q_CFG = {
    "backbone": {
        "type": "ConcatenateMLP",
        "args": {"hidden_sizes": [A + 4 * S, 16], "output_size": 1, "activation": "relu"},
    },
    "state_encoder": {
        "type": "GaussianFourierProjectionEncoder",
        "args": {"embed_dim": 4, "x_shape": [S], "scale": 0.1},
    },
}


def test_sac_with_ensemble_heads_on_vmap_path():
    # an encoder with per-head parameters sends the ensemble through vmap(functional_call)
    ens = EnsembleQNetwork(FOURIER_Q_CFG, num_heads=3)
    loss = SACLoss(
        stochastic_actor(), qvalue_network=ens.heads, num_qvalue_nets=3, action_spec=SPEC
    )
    SoftUpdate(loss, tau=0.05)
    trainable = [p for p in ens.parameters() if p.requires_grad]
    one_step(loss, trainable, extra_params=trainable)
    w = ens.stacked.backbone.model.model.linear0.weight
    assert all(w.grad[i].abs().sum() > 0 for i in range(3))


def test_sac_with_double_q_heads_trains_double_q_parameters():
    dq = DoubleQNetwork(q_cfg())
    loss = SACLoss(stochastic_actor(), qvalue_network=dq.heads, action_spec=SPEC)
    updater = SoftUpdate(loss, tau=0.5)
    # the two heads keep their own initialisation
    obs, act = torch.randn(4, S), torch.rand(4, A)
    q1, q2 = dq.compute_double_q(act, obs)
    assert not torch.allclose(q1, q2)
    w = dq.stacked.backbone.model.model.linear0.weight
    one_step(loss, list(dq.parameters()), extra_params=dq.parameters())
    assert (w.grad[0].abs().sum() > 0) and (w.grad[1].abs().sum() > 0)
    # the loss's target copy follows dq through SoftUpdate
    target_w = loss.target_qvalue_network_params[
        "stacked", "backbone", "model", "model", "linear0", "weight"
    ]
    before = target_w.clone()
    updater.step()
    assert not torch.equal(before, target_w)


def test_td3_with_qnetwork():
    loss = TD3Loss(deterministic_actor(), QNetwork(q_cfg()), bounds=(-1.0, 1.0))
    SoftUpdate(loss, tau=0.05)
    one_step(loss, loss_params(loss.qvalue_network_params))


def test_cql_with_qnetwork():
    loss = CQLLoss(stochastic_actor(), QNetwork(q_cfg()), action_spec=SPEC, num_random=3)
    SoftUpdate(loss, tau=0.05)
    one_step(loss, loss_params(loss.qvalue_network_params))


def test_iql_with_qnetwork_and_vnetwork():
    v = VNetwork(V_CFG)
    loss = IQLLoss(stochastic_actor(), QNetwork(q_cfg()), v, expectile=0.7)
    SoftUpdate(loss, tau=0.05)
    one_step(loss, loss_params(loss.qvalue_network_params))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in v.parameters())


def test_ddpg_with_double_q_as_single_critic():
    dq = DoubleQNetwork(q_cfg())
    loss = DDPGLoss(deterministic_actor(), dq)
    SoftUpdate(loss, tau=0.05)
    own = {id(p) for p in dq.parameters()}
    critic = loss_params(loss.value_network_params)
    assert {id(p) for p in critic} == own  # the loss trains dq's own parameters
    one_step(loss, critic)


def test_conditioned_critic_under_sac():
    cfg = q_cfg(extra=C, condition_encoder={"type": "identity", "args": {}})
    q = QNetwork(cfg)
    assert q.in_keys == ["observation", "action", "condition"]
    loss = SACLoss(stochastic_actor(), qvalue_network=q, action_spec=SPEC)
    SoftUpdate(loss, tau=0.05)
    one_step(loss, loss_params(loss.qvalue_network_params), td=batch(condition=True))
    with pytest.raises(KeyError, match="condition"):
        loss(batch(condition=False))
