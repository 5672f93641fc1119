"""grl_torchrl.objectives: the fused losses give TorchRL's stock values and gradients, bit for
bit, and keep every property of the critic-in-losses API (issue 8)."""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torchrl.data import Bounded
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import CQLLoss as StockCQL
from torchrl.objectives import IQLLoss as StockIQL
from torchrl.objectives import REDQLoss as StockREDQ
from torchrl.objectives import SACLoss as StockSAC
from torchrl.objectives import SoftUpdate
from torchrl.objectives import TD3Loss as StockTD3
from transitions import transition_batch

from grl_torchrl import (
    DoubleQNetwork,
    EnsembleQNetwork,
    EnsembleVNetwork,
    QNetwork,
    VNetwork,
    objectives,
)
from grl_torchrl.objectives import FusedQEnsemble

S, A, C, B, H = 3, 2, 2, 32, 32
SPEC = Bounded(-1.0, 1.0, shape=(A,))


@pytest.fixture(autouse=True)
def _seed():
    # (one torch thread for the whole suite: see the root conftest.py)
    torch.manual_seed(0)


def q_cfg(extra=0, layernorm=False, activation="relu", hidden=(H, H), **kw):
    args = {"hidden_sizes": [A + S + extra, *hidden], "output_size": 1, "activation": activation}
    if layernorm:
        args["layernorm"] = True
    return {"backbone": {"type": "ConcatenateMLP", "args": args}, **kw}


V_CFG = {
    "backbone": {
        "type": "MultiLayerPerceptron",
        "args": {"hidden_sizes": [S, H], "output_size": 1, "activation": "relu"},
    }
}


def stochastic_actor():
    net = torch.nn.Sequential(
        MLP(in_features=S, out_features=2 * A, num_cells=[H]), NormalParamExtractor()
    )
    return ProbabilisticActor(
        TensorDictModule(net, ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=SPEC,
        distribution_class=TanhNormal,
        return_log_prob=True,
    )


def deterministic_actor():
    net = torch.nn.Sequential(MLP(in_features=S, out_features=A, num_cells=[H]), torch.nn.Tanh())
    return TensorDictModule(net, ["observation"], ["action"])


def fixed_batch(condition=False, seed=1):
    return transition_batch(B, S, A, seed=seed, done_prob=0.2, condition_dim=C if condition else 0)


# name: (fused class, stock class, critic factory, extra positional args, kwargs, actor)
CASES = {
    "sac": (objectives.SACLoss, StockSAC, lambda: DoubleQNetwork(q_cfg()), {}, "stochastic"),
    "td3": (
        objectives.TD3Loss,
        StockTD3,
        lambda: DoubleQNetwork(q_cfg()),
        {"bounds": (-1.0, 1.0)},
        "deterministic",
    ),
    "redq": (
        objectives.REDQLoss,
        StockREDQ,
        lambda: EnsembleQNetwork(q_cfg(), num_heads=10),
        {"sub_sample_len": 2},
        "stochastic",
    ),
    "iql": (
        objectives.IQLLoss,
        StockIQL,
        lambda: DoubleQNetwork(q_cfg()),
        {"value_network": "V", "expectile": 0.7},
        "stochastic",
    ),
    "cql": (
        objectives.CQLLoss,
        StockCQL,
        lambda: DoubleQNetwork(q_cfg()),
        {"num_random": 3},
        "stochastic",
    ),
}


def kwargs_for(name, kwargs):
    kwargs = dict(kwargs)
    if kwargs.get("value_network") == "V":
        kwargs["value_network"] = VNetwork(V_CFG)
    if name in ("sac", "redq", "cql"):
        kwargs["action_spec"] = SPEC
    return kwargs


def make_pair(name, critic=None):
    """Our fused loss from the critic, and the stock class from copies of the same heads,
    with every parameter and buffer loaded from ours (the same weights, bit for bit)."""
    fused_cls, stock_cls, make_critic, kwargs, actor_kind = CASES[name]
    critic = make_critic() if critic is None else critic
    actor = stochastic_actor() if actor_kind == "stochastic" else deterministic_actor()
    kwargs = kwargs_for(name, kwargs)
    stock_kwargs = copy.deepcopy(kwargs)
    heads = critic.heads  # independent copies of the critic's current weights
    ours = fused_cls(actor, qvalue_network=critic, **kwargs)
    if name != "cql":  # CQLLoss has no num_qvalue_nets: two heads, always
        stock_kwargs["num_qvalue_nets"] = len(heads)
    stock = stock_cls(copy.deepcopy(actor), qvalue_network=heads, **stock_kwargs)
    stock.load_state_dict(ours.state_dict())
    return critic, ours, stock


def run(loss, td, seed):
    torch.manual_seed(seed)
    out = loss(td.clone())
    total = sum(v for k, v in out.items() if k.startswith("loss_"))
    loss.zero_grad(set_to_none=True)
    total.backward()
    grads = {n: p.grad for n, p in loss.named_parameters()}
    return out.detach(), grads


def assert_bit_identical(ours, stock, td, seed=3):
    out_ours, grads_ours = run(ours, td, seed)
    out_stock, grads_stock = run(stock, td, seed)
    assert set(out_ours.keys(True, True)) == set(out_stock.keys(True, True))
    for key in out_stock.keys(True, True):
        torch.testing.assert_close(out_ours[key], out_stock[key], rtol=0, atol=0, msg=str(key))
    assert grads_ours.keys() == grads_stock.keys()
    for name, grad in grads_stock.items():
        if grad is None:
            assert grads_ours[name] is None, name
        else:
            torch.testing.assert_close(grads_ours[name], grad, rtol=0, atol=0, msg=name)
    return out_ours, grads_ours


@pytest.mark.parametrize("name", list(CASES))
def test_fused_losses_and_gradients_equal_the_stock_class_bit_for_bit(name):
    critic, ours, stock = make_pair(name)
    hooks = [attr for attr, _ in type(ours)._fused_hooks if hasattr(stock, attr)]
    assert ours.fused and hooks
    assert all(isinstance(getattr(ours, attr), FusedQEnsemble) for attr in hooks)
    assert not any(isinstance(getattr(stock, attr), FusedQEnsemble) for attr in hooks)
    out, grads = assert_bit_identical(ours, stock, fixed_batch())
    # the comparison is not vacuous: the critic's gradient is non-zero
    q_grads = [g for n, g in grads.items() if n.startswith("qvalue_network_params")]
    assert q_grads and all(g is not None and g.abs().sum() > 0 for g in q_grads)


def test_redq_draws_the_same_heads_and_differs_when_the_draw_differs():
    critic, ours, stock = make_pair("redq")
    td = fixed_batch()
    for seed in (0, 1, 2):  # several draws of the 2 target heads out of 10
        assert_bit_identical(ours, stock, td, seed=seed)
    # an independent check that the subsampled heads matter: another draw, another target
    targets = {seed: run(ours, td, seed)[0]["target_value"] for seed in range(6)}
    assert any(not torch.equal(targets[0], t) for t in targets.values())


@pytest.mark.parametrize(
    "cfg",
    [q_cfg(layernorm=True), q_cfg(activation="tanh"), q_cfg(hidden=(H, 2 * H, H))],
    ids=["layernorm", "tanh", "three-hidden-layers"],
)
def test_sac_parity_on_other_fusable_mlps(cfg):
    critic, ours, stock = make_pair("sac", DoubleQNetwork(cfg))
    assert ours.fused
    assert_bit_identical(ours, stock, fixed_batch())


def test_conditioned_critic_parity():
    cfg = q_cfg(extra=C, condition_encoder={"type": "identity", "args": {}})
    critic = DoubleQNetwork(cfg)
    assert critic.in_keys == ["observation", "action", "condition"]
    critic, ours, stock = make_pair("sac", critic)
    assert ours.fused
    assert_bit_identical(ours, stock, fixed_batch(condition=True))


def test_fused_q_values_equal_the_critic_and_an_independent_per_head_computation():
    critic = EnsembleQNetwork(q_cfg(), num_heads=4)
    loss = objectives.REDQLoss(stochastic_actor(), critic, action_spec=SPEC)
    td = fixed_batch()
    fused = FusedQEnsemble(
        loss.qvalue_network, objectives.fused_q_plan(loss.qvalue_network), batched_input=False
    )
    got = fused(td.select("observation", "action"), loss.qvalue_network_params)
    got = got["state_action_value"]
    # by hand: each head is relu(relu([a, s] W0^T + b0) W1^T + b1) W2^T + b2
    p = loss.qvalue_network_params
    x = torch.cat([td["action"], td["observation"]], -1)
    for h in range(4):
        y = x
        for i in range(3):
            key = ("model", "backbone", "model", "model", f"linear{i}")
            y = y @ p[(*key, "weight")][h].T + p[(*key, "bias")][h]
            y = torch.relu(y) if i < 2 else y
        torch.testing.assert_close(got[h], y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got, critic.compute_heads(td["action"], td["observation"]))


def test_non_fusable_critics_take_the_stock_path_with_stock_values():
    # TorchRL's own critic: not ours, so stock behaviour, fused off, identical values
    value_op = ValueOperator(
        MLP(in_features=S + A, out_features=1, num_cells=[H, H]), in_keys=["observation", "action"]
    )
    ours = objectives.SACLoss(stochastic_actor(), value_op, action_spec=SPEC)
    assert not ours.fused
    stock = StockSAC(copy.deepcopy(ours.actor_network), value_op, action_spec=SPEC)
    stock.load_state_dict(ours.state_dict())
    assert_bit_identical(ours, stock, fixed_batch())
    # one of our critics with a parametrised activation (swish's beta): vmap path
    critic = DoubleQNetwork(q_cfg(activation="swish"))
    loss = objectives.SACLoss(stochastic_actor(), critic, action_spec=SPEC)
    assert not loss.fused
    assert (
        critic.stacked.backbone.model.model.linear0.weight
        is loss.qvalue_network_params["model", "backbone", "model", "model", "linear0", "weight"]
    )


def test_a_list_of_heads_and_a_single_qnetwork_are_fused_too():
    critic = DoubleQNetwork(q_cfg())
    loss = objectives.SACLoss(stochastic_actor(), critic.heads, action_spec=SPEC)
    assert loss.fused and loss.num_qvalue_nets == 2
    single = objectives.SACLoss(stochastic_actor(), QNetwork(q_cfg()), action_spec=SPEC)
    assert single.fused
    stock = StockSAC(copy.deepcopy(single.actor_network), QNetwork(q_cfg()), action_spec=SPEC)
    stock.load_state_dict(single.state_dict())
    assert_bit_identical(single, stock, fixed_batch())


def test_ensemble_argument_checks():
    critic = EnsembleQNetwork(q_cfg(), num_heads=4)
    init = {k: v.clone() for k, v in critic.stacked.state_dict().items()}
    loss = objectives.SACLoss(stochastic_actor(), critic, action_spec=SPEC)
    assert loss.num_qvalue_nets == 4
    # the loss starts from the critic's own, independently initialised heads (no resampling)
    for key, value in init.items():
        torch.testing.assert_close(
            loss.qvalue_network_params[("model", *key.split("."))], value, rtol=0, atol=0
        )
    first = init["backbone.model.model.linear0.weight"]
    assert not torch.equal(first[0], first[1])
    assert (
        loss.qvalue_network_params[
            "model", "backbone", "model", "model", "linear0", "weight"
        ].shape[0]
        == 4
    )
    with pytest.raises(ValueError, match=r"num_qvalue_nets=3, but .* has 4 heads"):
        objectives.SACLoss(stochastic_actor(), critic, num_qvalue_nets=3, action_spec=SPEC)
    with pytest.raises(ValueError, match=r"CQLLoss takes exactly 2 Q heads, but .* has 4"):
        objectives.CQLLoss(stochastic_actor(), critic, action_spec=SPEC)
    with pytest.raises(TypeError, match="qvalue_network must be a Q network, got EnsembleV"):
        objectives.SACLoss(stochastic_actor(), EnsembleVNetwork(V_CFG), action_spec=SPEC)
    with pytest.raises(TypeError):  # the stock signature: an unknown keyword is rejected
        objectives.SACLoss(stochastic_actor(), critic, num_heads=4)


def _critic_params(loss):
    return [p for p in loss.qvalue_network_params.values(True, True) if p.requires_grad]


@pytest.mark.parametrize("style", ["qvalue_network_params", "loss_parameters", "critic"])
@pytest.mark.parametrize("name", list(CASES))
def test_each_optimiser_style_trains_the_critic_the_user_holds(name, style):
    critic, loss, _ = make_pair(name)
    if style == "qvalue_network_params":
        params = _critic_params(loss)
    elif style == "loss_parameters":
        params = list(loss.parameters())
    else:
        params = list(critic.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    td = fixed_batch()
    before = critic(td.clone())["state_action_value"].clone()
    out = loss(td.clone())
    opt.zero_grad()
    out["loss_qvalue"].backward()
    opt.step()
    after = critic(td.clone())["state_action_value"]
    assert not torch.equal(before, after)
    # the critic computes with the loss's parameters: its heads equal the loss's Q values
    heads = critic.compute_heads(td["action"], td["observation"])
    q = loss._vmap_qvalue_network00 if name in ("td3", "redq") else None
    if q is None:
        attr = "_vmap_qnetworkN0" if name == "sac" else "_vmap_qvalue_networkN0"
        q_loss = getattr(loss, attr)(td.select("observation", "action"), loss.qvalue_network_params)
    else:
        inputs = td.select("observation", "action").expand(critic.num_heads, B)
        q_loss = q(inputs, loss.qvalue_network_params)
    # to float rounding: the critic's own forward computes its one-unit output layer in the
    # skinny layout (SkinnyStackedLinearReLU), the loss's fused path as TorchRL's stock loss
    torch.testing.assert_close(heads, q_loss["state_action_value"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_target_holds_n_copies_and_state_dict_deepcopy_to_work(name):
    critic, loss, _ = make_pair(name)
    per_head = sum(p[0].numel() for p in critic.stacked.parameters())
    target = loss.target_qvalue_network_params.values(True, True)
    assert sum(t.numel() for t in target) == critic.num_heads * per_head
    td = fixed_batch()
    ref, _ = run(loss, td, 5)
    weight_key = ("model", "backbone", "model", "model", "linear0", "weight")
    loss.load_state_dict(loss.state_dict())
    assert (
        critic.stacked.backbone.model.model.linear0.weight is loss.qvalue_network_params[weight_key]
    )
    clone = copy.deepcopy(loss)
    assert clone.fused
    out, _ = run(clone, td, 5)
    for key in ref.keys(True, True):
        torch.testing.assert_close(out[key], ref[key], rtol=0, atol=0)
    # the clone owns its parameters: training it leaves the original (and the critic) alone
    with torch.no_grad():
        clone.qvalue_network_params[weight_key].add_(1.0)
    assert not torch.equal(
        clone.qvalue_network_params[weight_key], critic.stacked.backbone.model.model.linear0.weight
    )
    moved = loss.to("cpu").double()
    # the detached copy the actor loss reads follows the cast and later in-place updates
    detached = (
        moved._cached_detach_qvalue_params
        if name == "cql"
        else moved._cached_detached_qvalue_params
        if name == "sac"
        else moved._cached_detach_qvalue_network_params
        if name in ("td3", "redq")
        else None
    )
    if detached is not None:
        with torch.no_grad():
            moved.qvalue_network_params[weight_key].mul_(0.5)
        assert torch.equal(detached[weight_key], moved.qvalue_network_params[weight_key])
    out64, _ = run(moved, td.apply(lambda t: t.double() if t.is_floating_point() else t), 5)
    assert out64["loss_qvalue"].dtype == torch.float64
    assert critic.stacked.backbone.model.model.linear0.weight.dtype == torch.float64
    # (float64 draws other random numbers than float32: no value comparison here)
    assert all(torch.isfinite(v).all() for v in out64.values(True, True))


def test_a_soft_update_moves_the_target_and_the_trained_critic_reduces_its_loss():
    critic = DoubleQNetwork(q_cfg())
    loss = objectives.SACLoss(stochastic_actor(), critic, action_spec=SPEC, loss_function="l2")
    loss.make_value_estimator(gamma=0.9)
    updater = SoftUpdate(loss, tau=0.05)
    target = DoubleQNetwork(q_cfg()).bind_to_loss(loss, target=True)
    opt = torch.optim.Adam(loss.parameters(), lr=3e-3)
    td = fixed_batch()
    target_before = target(td.clone())["state_action_value"].clone()
    first = None
    for _ in range(200):
        out = loss(td.clone())
        first = out["loss_qvalue"].item() if first is None else first
        opt.zero_grad()
        (out["loss_qvalue"] + out["loss_actor"] + out["loss_alpha"]).backward()
        opt.step()
        updater.step()
    assert loss(td.clone())["loss_qvalue"].item() < 0.5 * first
    assert not torch.equal(target(td.clone())["state_action_value"], target_before)


def test_an_mlp_with_an_output_scale_takes_the_stock_path_and_applies_it():
    cfg = q_cfg()
    cfg["backbone"]["args"]["scale"] = 2.0
    critic, ours, stock = make_pair("sac", DoubleQNetwork(cfg))
    assert not ours.fused
    assert_bit_identical(ours, stock, fixed_batch())
    td = fixed_batch().select("observation", "action")
    q = ours._vmap_qnetworkN0(td, ours.qvalue_network_params)["state_action_value"]
    unscaled = DoubleQNetwork(q_cfg())
    unscaled.load_state_dict(
        {k: v for k, v in critic.state_dict().items() if not k.endswith("scale")}
    )
    torch.testing.assert_close(q, 2.0 * unscaled.compute_heads(td["action"], td["observation"]))


def test_every_public_name_is_documented_with_an_example():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "api" / "objectives.rst").read_text()
    index = (Path(__file__).resolve().parents[1] / "docs" / "api" / "index.rst").read_text()
    assert "   objectives\n" in index
    for name in objectives.__all__:
        obj = getattr(objectives, name)
        directive = "autofunction" if callable(obj) and not isinstance(obj, type) else "autoclass"
        assert f".. {directive}:: {name}\n" in page, name
        assert ">>>" in (obj.__doc__ or ""), name
