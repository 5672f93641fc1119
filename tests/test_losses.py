"""Our critics inside TorchRL's stock losses, used the way TorchRL's own scripts use them.

For every loss, the critic is handed over as ``critic.heads`` (independent copies the loss
stacks into parameters it owns) and ``critic.bind_to_loss(loss)`` makes the user's critic
compute with those parameters. Each loss is trained with the three ways TorchRL code builds
optimisers: from the loss's flattened ``<name>_params`` values (the sota scripts), from
``loss.parameters()`` (``torchrl.trainers.helpers.make_trainer``) and, ours, from the bound
critic's ``parameters()``.
"""

import copy

import pytest
import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torchrl.data import Bounded, Categorical
from torchrl.modules import MLP, OneHotCategorical, ProbabilisticActor, TanhNormal
from torchrl.objectives import (
    CQLLoss,
    DDPGLoss,
    DiscreteSACLoss,
    IQLLoss,
    REDQLoss,
    SACLoss,
    SoftUpdate,
    TD3Loss,
)
from transitions import transition_batch

from grl_torchrl import (
    DoubleQNetwork,
    EnsembleQNetwork,
    EnsembleVNetwork,
    QNetwork,
    VNetwork,
    to_upstream_state_dict,
)

S, A, C, B, N_ACTIONS = 3, 2, 2, 16, 3
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


def v_cfg(out=1):
    return {
        "backbone": {
            "type": "MultiLayerPerceptron",
            "args": {"hidden_sizes": [S, 16], "output_size": out, "activation": "relu"},
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


def discrete_actor():
    return ProbabilisticActor(
        TensorDictModule(
            MLP(in_features=S, out_features=N_ACTIONS, num_cells=[16]), ["observation"], ["logits"]
        ),
        in_keys=["logits"],
        spec=Categorical(N_ACTIONS),
        distribution_class=OneHotCategorical,
        return_log_prob=True,
    )


def fixed_batch(discrete=False, condition=False, seed=1):
    return transition_batch(
        B,
        S,
        A,
        seed=seed,
        num_discrete_actions=N_ACTIONS if discrete else 0,
        condition_dim=C if condition else 0,
    )


# Each case: how to build (critic, loss) from scratch, the loss's name for the critic, the
# loss term that trains it, and whether the batch is discrete.
def _sac():
    critic = DoubleQNetwork(q_cfg())
    return critic, SACLoss(stochastic_actor(), qvalue_network=critic.heads, action_spec=SPEC)


def _td3():
    critic = DoubleQNetwork(q_cfg())
    return critic, TD3Loss(deterministic_actor(), critic.heads, bounds=(-1.0, 1.0))


def _iql():
    critic = DoubleQNetwork(q_cfg())
    return critic, IQLLoss(stochastic_actor(), critic.heads, VNetwork(v_cfg()), expectile=0.7)


def _cql():
    critic = DoubleQNetwork(q_cfg())
    return critic, CQLLoss(stochastic_actor(), critic.heads, action_spec=SPEC, num_random=3)


def _redq():
    critic = EnsembleQNetwork(q_cfg(), num_heads=10)
    loss = REDQLoss(
        stochastic_actor(), critic.heads, num_qvalue_nets=10, sub_sample_len=2, action_spec=SPEC
    )
    return critic, loss


def _discrete_sac():
    # a discrete critic maps the state to one value per action: a V-type ensemble
    critic = EnsembleVNetwork(v_cfg(N_ACTIONS), num_heads=2, out_keys=["action_value"])
    loss = DiscreteSACLoss(
        discrete_actor(), critic.heads, num_actions=N_ACTIONS, action_space="one-hot"
    )
    return critic, loss


CASES = {
    "sac": (_sac, "qvalue_network", "loss_qvalue", False),
    "td3": (_td3, "qvalue_network", "loss_qvalue", False),
    "iql": (_iql, "qvalue_network", "loss_qvalue", False),
    "cql": (_cql, "qvalue_network", "loss_qvalue", False),
    "redq": (_redq, "qvalue_network", "loss_qvalue", False),
    "discrete_sac": (_discrete_sac, "qvalue_network", "loss_qvalue", True),
}


def build(name):
    make, network, term, discrete = CASES[name]
    critic, loss = make()
    critic.bind_to_loss(loss, network)
    return critic, loss, term, fixed_batch(discrete=discrete)


def optimiser(style, loss, critic, network="qvalue_network"):
    if style == "params_values":  # TorchRL's sota scripts
        params = list(getattr(loss, f"{network}_params").flatten_keys().values())
        params = [p for p in params if p.requires_grad]
    elif style == "loss_parameters":  # torchrl.trainers helpers
        params = list(loss.parameters())
    else:  # the bound critic, as a GenerativeRL user holds it
        params = list(critic.parameters())
    return torch.optim.Adam(params, lr=1e-2)


def trainable_snapshot(critic):
    return [p.detach().clone() for p in critic.parameters()]


@pytest.mark.parametrize("style", ["params_values", "loss_parameters", "bound_critic"])
@pytest.mark.parametrize("name", list(CASES))
def test_one_update_trains_the_critic_the_user_holds(name, style):
    critic, loss, term, td = build(name)
    opt = optimiser(style, loss, critic)
    obs = td["observation"][:4]
    call = (lambda: critic(obs)) if not critic.is_q else (lambda: critic(td["action"][:4], obs))
    before_out = call().detach().clone()
    before = trainable_snapshot(critic)
    loss(td.clone())[term].backward()
    opt.step()
    after = list(critic.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    # every head moved (a loss that silently trains one head, or none, fails here)
    w = after[0]
    assert all(not torch.equal(before[0][i], w[i]) for i in range(critic.num_heads))
    assert not torch.equal(before_out, call().detach())


@pytest.mark.parametrize("name", list(CASES))
def test_a_few_hundred_updates_reduce_the_critic_loss(name):
    critic, loss, term, td = build(name)
    # gamma = 0: the TD target is the reward, so the critic term is a regression
    loss.make_value_estimator(gamma=0.0)
    opt = optimiser("params_values", loss, critic)
    first = None
    for _ in range(200):
        value = loss(td.clone())[term]
        first = value.item() if first is None else first
        opt.zero_grad()
        value.backward()
        opt.step()
    assert loss(td.clone())[term].item() < 0.5 * first


@pytest.mark.parametrize("name", list(CASES))
def test_heads_keep_their_independent_initialisation(name):
    make, network, _, _ = CASES[name]
    critic, loss = make()
    stacked = critic.stacked.backbone.model
    key = ("model", "backbone", "model", *(("model",) if critic.is_q else ()), "linear0", "weight")
    loss_w = getattr(loss, f"{network}_params")[key]
    own_w = stacked.get_submodule("model.linear0" if critic.is_q else "linear0").weight
    # the loss stacked our heads as they are: no uniform re-initialisation by TorchRL
    torch.testing.assert_close(loss_w.data, own_w.data, rtol=0, atol=0)
    assert not torch.equal(own_w[0], own_w[1])


@pytest.mark.parametrize("name", list(CASES))
def test_target_holds_one_copy_per_head(name):
    critic, loss, _, _ = build(name)
    target = loss.target_qvalue_network_params
    numel = sum(t.numel() for t in target.values(True, True))
    assert numel == sum(p.numel() for p in critic.parameters())


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_round_trip_deepcopy_and_to(name):
    torch.manual_seed(3)
    critic, loss, term, td = build(name)
    opt = optimiser("loss_parameters", loss, critic)
    loss(td.clone())[term].backward()
    opt.step()
    state = loss.state_dict()
    loss.load_state_dict(state)  # in place: TorchRL's own checkpoint reload
    torch.manual_seed(0)
    reference = loss(td.clone())[term]

    _, fresh = CASES[name][0]()
    fresh(td.clone())  # TorchRL builds the value estimator (part of the state) on first use
    fresh.load_state_dict(state)
    torch.manual_seed(0)
    torch.testing.assert_close(fresh(td.clone())[term], reference)

    clone = copy.deepcopy(loss)
    torch.manual_seed(0)
    torch.testing.assert_close(clone(td.clone())[term], reference)
    with torch.no_grad():
        next(iter(clone.qvalue_network_params.values(True, True))).add_(1.0)
    torch.manual_seed(0)
    torch.testing.assert_close(loss(td.clone())[term], reference)  # the copy is independent

    ids = {id(p) for p in critic.parameters()}
    loss.to("cpu").to(torch.float64)
    assert ids == {id(p) for p in critic.parameters()}  # still bound after a cast
    assert next(critic.parameters()).dtype == torch.float64


def test_bound_critic_follows_the_loss_and_writes_upstream_checkpoints():
    critic, loss, term, td = build("sac")
    SoftUpdate(loss, tau=0.5)
    target = DoubleQNetwork(q_cfg()).bind_to_loss(loss, target=True)
    obs, act = td["observation"], td["action"]
    q_before, target_before = critic.compute_double_q(act, obs), target(act, obs)
    loss_w = loss.qvalue_network_params["model", "backbone", "model", "model", "linear1", "bias"]
    torch.testing.assert_close(critic.compute_double_q(act, obs)[1], critic.model.q2(act, obs))
    opt = optimiser("params_values", loss, critic)
    loss(td.clone())[term].backward()
    opt.step()
    q_after = critic.compute_double_q(act, obs)
    assert all(not torch.equal(b, a) for b, a in zip(q_before, q_after, strict=True))
    # the upstream-style per-head path and the checkpoint see the trained weights
    torch.testing.assert_close(critic.model.q1(act, obs), q_after[0])
    sd = to_upstream_state_dict(critic)
    torch.testing.assert_close(
        sd["model.q2.model.backbone.model.model.linear1.bias"], loss_w[1].detach()
    )
    # the target follows only through the target updater
    torch.testing.assert_close(target(act, obs), target_before)
    loss.target_qvalue_network_params.apply(lambda t: t.data.add_(0.25))
    assert not torch.equal(target(act, obs), target_before)
    assert not any(p.requires_grad for p in target.parameters())


def test_bind_to_loss_refuses_a_loss_built_from_other_heads():
    critic = DoubleQNetwork(q_cfg())
    loss = REDQLoss(
        stochastic_actor(),
        EnsembleQNetwork(q_cfg(), num_heads=4).heads,
        num_qvalue_nets=4,
        action_spec=SPEC,
    )
    with pytest.raises(ValueError, match=r"shape \[4, 16, 5\], expected \[2, 16, 5\]"):
        critic.bind_to_loss(loss)
    with pytest.raises(ValueError, match="has no 'value_network_params'"):
        critic.bind_to_loss(loss, "value_network")


def test_iql_value_network_trains_through_value_network_params():
    critic, loss, _, td = build("iql")
    v = loss.value_network
    opt = torch.optim.Adam(list(loss.value_network_params.flatten_keys().values()), lr=1e-2)
    before = [p.detach().clone() for p in loss.value_network_params.values(True, True)]
    loss(td.clone())["loss_value"].backward()
    opt.step()
    after = list(loss.value_network_params.values(True, True))
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert isinstance(v, VNetwork)


def test_ddpg_takes_a_double_q_network_as_its_single_critic():
    dq = DoubleQNetwork(q_cfg())
    loss = DDPGLoss(deterministic_actor(), dq)
    SoftUpdate(loss, tau=0.05)
    own = {id(p) for p in dq.parameters()}
    critic = [p for p in loss.value_network_params.values(True, True) if p.requires_grad]
    assert {id(p) for p in critic} == own  # the loss trains dq's own parameters
    target = loss.target_value_network_params
    assert sum(t.numel() for t in target.values(True, True)) == sum(p.numel() for p in critic)
    opt = torch.optim.Adam(list(loss.value_network_params.flatten_keys().values()), lr=1e-2)
    td = fixed_batch()
    before = dq(td["action"], td["observation"]).detach().clone()
    loss(td.clone())["loss_value"].backward()
    opt.step()
    assert not torch.equal(before, dq(td["action"], td["observation"]))


def test_conditioned_critic_under_sac():
    cfg = q_cfg(extra=C, condition_encoder={"type": "identity", "args": {}})
    critic = DoubleQNetwork(cfg)
    assert critic.in_keys == ["observation", "action", "condition"]
    loss = SACLoss(stochastic_actor(), qvalue_network=critic.heads, action_spec=SPEC)
    critic.bind_to_loss(loss)
    opt = optimiser("loss_parameters", loss, critic)
    before = trainable_snapshot(critic)
    loss(fixed_batch(condition=True))["loss_qvalue"].backward()
    opt.step()
    assert all(not torch.equal(b, a) for b, a in zip(before, critic.parameters(), strict=True))
    with pytest.raises(KeyError, match="condition"):
        loss(fixed_batch(condition=False))


def test_single_qnetwork_still_works_but_is_expanded_by_the_loss():
    # TorchRL's own behaviour for one module: N re-sampled copies the loss owns
    q = QNetwork(q_cfg())
    loss = SACLoss(stochastic_actor(), qvalue_network=q, action_spec=SPEC)
    w = loss.qvalue_network_params["model", "backbone", "model", "model", "linear0", "weight"]
    assert w.shape == (2, 16, S + A) and w.is_leaf
