"""Our critics used the way TorchRL's reference scripts and trainers use a critic.

Each test rebuilds, in small, one pattern found in TorchRL's sota SAC / IQL / REDQ scripts and
its trainer helpers (optimisers from ``loss.<net>_params`` grouped with ``group_optimizers``, or
from ``loss.parameters()`` inside ``torchrl.trainers``; checkpoints of ``loss.state_dict()``;
prioritized replay whose priorities come from the loss's ``td_error``), and one from
GenerativeRL's algorithms (a critic holding ``q``, ``q_target = deepcopy(q)`` and ``v``, trained
by hand with Polyak averaging and saved whole). The only change to each pattern is the critic:
``critic.heads`` for the loss, then ``critic.bind_to_loss(loss)``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import (
    Bounded,
    LazyTensorStorage,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)
from torchrl.data.replay_buffers import PrioritizedSampler
from torchrl.envs import GymEnv
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal
from torchrl.objectives import IQLLoss, REDQLoss, SACLoss, SoftUpdate, group_optimizers
from torchrl.objectives.deprecated import REDQLoss_deprecated
from torchrl.trainers.helpers.trainers import TrainerConfig, make_trainer
from transitions import transition_batch

from grl_torchrl import (
    DoubleQNetwork,
    EnsembleQNetwork,
    GymEnvSimulator,
    VNetwork,
    to_upstream_state_dict,
)

OBS, ACT, HIDDEN = 3, 1, 32  # Pendulum-v1 sizes, small hidden layers
SPEC = Bounded(-2.0, 2.0, shape=(ACT,))


@pytest.fixture(autouse=True)
def _seed_and_quiet(monkeypatch):
    torch.manual_seed(0)
    # TorchRL warns about target params without an updater in tests that skip SoftUpdate
    monkeypatch.setenv("RL_WARNINGS", "False")


def q_config(hidden=HIDDEN):
    return {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {
                "hidden_sizes": [OBS + ACT, hidden, hidden],
                "output_size": 1,
                "activation": "relu",
            },
        }
    }


def v_config(hidden=HIDDEN):
    return {
        "backbone": {
            "type": "MultiLayerPerceptron",
            "args": {"hidden_sizes": [OBS, hidden, hidden], "output_size": 1, "activation": "relu"},
        }
    }


def make_actor():
    net = nn.Sequential(
        MLP(in_features=OBS, out_features=2 * ACT, num_cells=[HIDDEN]), NormalParamExtractor()
    )
    return ProbabilisticActor(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=SPEC,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": SPEC.space.low, "high": SPEC.space.high},
        return_log_prob=True,
    )


def batch(n=64, terminal=False, seed=1):
    """A transition batch; with ``terminal`` every next state is terminal, so the Bellman
    target is the reward alone and the critic loss is a plain regression."""
    return transition_batch(
        n, OBS, ACT, seed=seed, done_prob=1.0 if terminal else 0.0, action_bound=2.0
    )


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def max_change(module, before):
    now = module.state_dict()
    return max((now[k] - before[k]).abs().max().item() for k in before)


def head_outputs_through_loss_params(loss, td, params, name="qvalue_network"):
    """Each head evaluated by the loss's own functional module on ``params`` (stacked)."""
    outs = []
    for i in range(params.shape[0]):
        with params[i].to_module(getattr(loss, name)):
            outs.append(getattr(loss, name)(td.clone())["state_action_value"])
    return torch.stack(outs)


def head_outputs_through_loss(loss, td, name="qvalue_network"):
    return head_outputs_through_loss_params(loss, td, getattr(loss, f"{name}_params"), name)


def numel(td):
    return sum(v.numel() for v in td.values(True, True))


# --------------------------------------------------------------------------- SAC script
def test_sac_script_pattern_grouped_optimisers_and_soft_update():
    """sota sac.py: Adam per group from ``loss.<net>_params.flatten_keys().values()`` and
    ``[loss.log_alpha]``, merged by ``group_optimizers``; ``SoftUpdate(eps=0.995)``."""
    critic = DoubleQNetwork(q_config())
    loss = SACLoss(
        make_actor(),
        qvalue_network=critic.heads,
        num_qvalue_nets=2,
        loss_function="l2",
        delay_actor=False,
        delay_qvalue=True,
    )
    loss.make_value_estimator(gamma=0.99)
    critic.bind_to_loss(loss)
    updater = SoftUpdate(loss, eps=0.995)
    optimizer = group_optimizers(
        torch.optim.Adam(list(loss.actor_network_params.flatten_keys().values()), lr=1e-3),
        torch.optim.Adam(list(loss.qvalue_network_params.flatten_keys().values()), lr=1e-3),
        torch.optim.Adam([loss.log_alpha], lr=3e-4),
    )
    td = batch()
    before = snapshot(critic)
    target_before = loss.target_qvalue_network_params.clone()
    for _ in range(3):
        out = loss(td.clone())
        (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        updater.step()
        if _ == 0:
            target_expected = target_before.apply(
                lambda t, p: 0.995 * t + 0.005 * p.detach(), loss.qvalue_network_params
            )
            gaps = (loss.target_qvalue_network_params.data - target_expected).abs()
            assert max(g.max().item() for g in gaps.values(True, True)) < 1e-6

    assert max_change(critic, before) > 1e-4  # trained, as seen through the critic we hold
    # the critic computes with exactly the loss's parameters, head by head
    torch.testing.assert_close(
        critic.compute_heads(td["action"], td["observation"]),
        head_outputs_through_loss(loss, td),
    )
    # the target holds one copy per head (two), not two copies of the whole ensemble
    assert numel(loss.target_qvalue_network_params) == sum(p.numel() for p in critic.parameters())


# --------------------------------------------------------------------------- IQL script
def test_iql_script_pattern_three_optimisers_train_q_and_v():
    """sota iql_online.py: separate Adams from ``actor_network_params``,
    ``qvalue_network_params`` and ``value_network_params`` (our VNetwork as value net)."""
    critic, value = DoubleQNetwork(q_config()), VNetwork(v_config())
    loss = IQLLoss(
        make_actor(),
        critic.heads,
        value_network=value,
        loss_function="l2",
        temperature=3.0,
        expectile=0.7,
    )
    loss.make_value_estimator(gamma=0.99)
    critic.bind_to_loss(loss)
    optimizers = [
        torch.optim.Adam(list(getattr(loss, f"{n}_params").flatten_keys().values()), lr=1e-3)
        for n in ("actor_network", "qvalue_network", "value_network")
    ]
    optimizer = group_optimizers(*optimizers)
    td = batch()
    q_before, v_before = snapshot(critic), snapshot(value)
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        out = loss(td.clone())
        (out["loss_actor"] + out["loss_value"] + out["loss_qvalue"]).backward()
        optimizer.step()
    assert max_change(critic, q_before) > 1e-4
    assert max_change(value, v_before) > 1e-4
    # the value net the user holds is the one the loss evaluates
    with loss.value_network_params.to_module(loss.value_network):
        expected = loss.value_network(td.clone())["state_value"]
    torch.testing.assert_close(value(td["observation"]), expected)


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("loss_name", ["sac", "redq_deprecated"])
def test_loss_checkpoint_loads_into_a_fresh_loss_and_critic(tmp_path, loss_name):
    """torch.save(loss.state_dict()) after training, then a freshly built loss loads it."""

    def build():
        heads = 2 if loss_name == "sac" else 10
        critic = EnsembleQNetwork(q_config(), num_heads=heads)
        if loss_name == "sac":
            loss = SACLoss(make_actor(), qvalue_network=critic.heads, num_qvalue_nets=heads)
        else:
            loss = REDQLoss_deprecated(
                make_actor(), qvalue_network=critic.heads, num_qvalue_nets=heads
            )
        loss.make_value_estimator(gamma=0.99)
        # REDQ losses register their target-entropy buffer on first use (TorchRL's own
        # critics alike): touch it so that a fresh loss has every key of a trained one
        loss.target_entropy  # noqa: B018
        return loss, critic.bind_to_loss(loss)

    loss, critic = build()
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3)
    updater = SoftUpdate(loss, tau=0.05)
    td = batch()
    for _ in range(3):
        out = loss(td.clone())
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        optimizer.step()
        optimizer.zero_grad()
        updater.step()
    torch.save({"loss": loss.state_dict(), "optim": optimizer.state_dict()}, tmp_path / "ck.pt")

    fresh_loss, fresh_critic = build()
    obs, act = td["observation"], td["action"]
    assert not torch.equal(fresh_critic.compute_heads(act, obs), critic.compute_heads(act, obs))
    checkpoint = torch.load(tmp_path / "ck.pt", weights_only=False)
    fresh_loss.load_state_dict(checkpoint["loss"])
    fresh_optim = torch.optim.Adam(fresh_loss.parameters(), lr=1e-3)
    fresh_optim.load_state_dict(checkpoint["optim"])
    assert torch.equal(fresh_critic.compute_heads(act, obs), critic.compute_heads(act, obs))
    assert (fresh_loss.target_qvalue_network_params == loss.target_qvalue_network_params).all()
    # and training goes on identically from the checkpoint
    for lo, opt in ((loss, optimizer), (fresh_loss, fresh_optim)):
        torch.manual_seed(3)
        out = lo(td.clone())
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        opt.step()
    torch.testing.assert_close(fresh_critic.compute_heads(act, obs), critic.compute_heads(act, obs))


def test_deepcopy_of_a_loss_trains_apart_from_the_original():
    critic = DoubleQNetwork(q_config())
    loss = SACLoss(make_actor(), qvalue_network=critic.heads)
    loss.make_value_estimator(gamma=0.99)
    critic.bind_to_loss(loss)
    clone = copy.deepcopy(loss)
    before = snapshot(critic)
    optimizer = torch.optim.Adam(clone.parameters(), lr=1e-2)
    clone(batch())["loss_qvalue"].backward()
    optimizer.step()
    assert max_change(critic, before) == 0.0  # the original (and our critic) untouched
    moved = [
        (a - b).abs().max().item()
        for a, b in zip(
            clone.qvalue_network_params.values(True, True),
            loss.qvalue_network_params.values(True, True),
            strict=True,
        )
    ]
    assert max(moved) > 1e-4
    # binding a fresh ensemble to the copy shows the copy's weights
    twin = DoubleQNetwork(q_config()).bind_to_loss(clone)
    td = batch()
    torch.testing.assert_close(
        twin.compute_heads(td["action"], td["observation"]), head_outputs_through_loss(clone, td)
    )


def test_bound_target_follows_the_loss_through_dtype_and_device_casts():
    """Scripts move the whole loss (``loss.to(device)``, ``loss.double()``); an ensemble bound
    to the target parameters must keep reading them afterwards, as the bound critic does."""
    critic = DoubleQNetwork(q_config())
    loss = SACLoss(make_actor(), qvalue_network=critic.heads)
    loss.make_value_estimator(gamma=0.99)
    critic.bind_to_loss(loss)
    target = DoubleQNetwork(q_config()).bind_to_loss(loss, target=True)
    updater = SoftUpdate(loss, tau=0.5)
    td = batch()
    obs, act = td["observation"], td["action"]

    def target_through_loss():
        return head_outputs_through_loss_params(loss, td, loss.target_qvalue_network_params)

    for cast in (lambda m: m.double(), lambda m: m.float(), lambda m: m.to("cpu")):
        cast(loss)
        with torch.no_grad():
            for p in loss.qvalue_network_params.values(True, True):
                p.add_(torch.randn_like(p))
        updater.step()
        dtype = next(iter(loss.qvalue_network_params.values(True, True))).dtype
        # batched and per-head kernels round differently (relative 1e-6 in float32); stale
        # parameters would differ by the O(1) noise added above
        torch.testing.assert_close(
            critic.compute_heads(act.to(dtype), obs.to(dtype)),
            head_outputs_through_loss(loss, td.to(dtype)),
            rtol=1e-5,
            atol=1e-5,
        )
        torch.testing.assert_close(
            target.compute_heads(act.to(dtype), obs.to(dtype)),
            target_through_loss(),
            rtol=1e-5,
            atol=1e-5,
        )


# --------------------------------------------------------------------------- REDQ
@pytest.mark.parametrize("loss_cls", [REDQLoss, REDQLoss_deprecated])
def test_redq_ten_heads_subsampled_fit_a_regression_batch(loss_cls):
    """10 heads with REDQ's subsampled target (2 of the 10 target heads, its default). Every
    next state of the batch is terminal, so the target is the reward and the critic loss is a
    plain regression all 10 heads must fit (the trainer test below runs non-terminal data)."""
    critic = EnsembleQNetwork(q_config(), num_heads=10)
    loss = loss_cls(make_actor(), qvalue_network=critic.heads, num_qvalue_nets=10, sub_sample_len=2)
    loss.make_value_estimator(gamma=0.99)
    critic.bind_to_loss(loss)
    one_head = sum(p[0].numel() for p in critic.parameters())
    assert numel(loss.target_qvalue_network_params) == 10 * one_head
    assert numel(loss.qvalue_network_params) == 10 * one_head
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-3)
    td = batch(terminal=True)
    reward = td["next", "reward"]
    first = ((critic.compute_heads(td["action"], td["observation"]) - reward) ** 2).mean()
    for _ in range(160):
        out = loss(td.clone())
        optimizer.zero_grad()
        out["loss_qvalue"].backward()
        optimizer.step()
    heads = critic.compute_heads(td["action"], td["observation"])
    last = ((heads - reward) ** 2).mean()
    assert last < 0.25 * first, (first.item(), last.item())  # ~0.1 measured
    # every head trained, not just the first
    assert all(((h - reward) ** 2).mean() < 0.5 * first for h in heads)


def test_trainer_helper_with_prioritized_replay_trains_a_redq_ensemble(tmp_path, request):
    """``torchrl.trainers.helpers.make_trainer``: Adam over ``loss.parameters()``, a replay
    buffer with a ``PrioritizedSampler`` whose priorities the trainer updates from the loss,
    ``SoftUpdate`` after each step; then the trainer's checkpoint restores a fresh one."""
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    request.addfinalizer(env.close)

    def build():
        actor = make_actor()
        critic = EnsembleQNetwork(q_config(), num_heads=10)
        loss = REDQLoss_deprecated(actor, qvalue_network=critic.heads, num_qvalue_nets=10)
        loss.make_value_estimator(gamma=0.99)
        loss.target_entropy  # noqa: B018  (registers the buffer a checkpoint holds, see above)
        critic.bind_to_loss(loss)
        collector = Collector(env, actor, frames_per_batch=64, total_frames=128)
        buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(1_000),
            sampler=PrioritizedSampler(max_capacity=1_000, alpha=0.7, beta=0.5),
            batch_size=32,
        )
        cfg = TrainerConfig(
            optim_steps_per_batch=6,
            batch_size=32,
            lr=1e-3,
            lr_scheduler="",
            normalize_rewards_online=False,
        )
        cfg.frame_skip, cfg.total_frames = 1, 128  # read by make_trainer, not dataclass fields
        trainer = make_trainer(
            collector,
            loss,
            target_net_updater=SoftUpdate(loss, tau=0.05),
            replay_buffer=buffer,
            cfg=cfg,
        )
        # the trainer checkpoints itself after each collected batch
        trainer.save_trainer_file, trainer.save_trainer_interval = tmp_path / "trainer.pt", 1
        return trainer, critic, loss, buffer

    trainer, critic, loss, buffer = build()
    optim_params = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in optim_params for p in critic.parameters())
    assert optim_params == {id(p) for p in loss.parameters()}
    before = snapshot(critic)
    trainer.train()  # shuts its collector down at the end
    assert trainer._optim_count == 12
    change = critic.state_dict()
    assert all(
        (change[k] - before[k]).abs().amax(dim=tuple(range(1, change[k].dim()))).gt(0).all()
        for k in before
    )  # every head of every layer moved
    # priorities were written from the loss's td_error: no longer all equal
    stored = torch.as_tensor([buffer.sampler._sum_tree[i] for i in range(len(buffer))])
    assert stored.unique().numel() > 1

    fresh_trainer, fresh_critic, _, _ = build()
    fresh_trainer.load_from_file(tmp_path / "trainer.pt", weights_only=False)
    fresh_trainer.collector.shutdown()
    assert fresh_trainer._optim_count == 12
    td = batch()
    assert torch.equal(
        fresh_critic.compute_heads(td["action"], td["observation"]),
        critic.compute_heads(td["action"], td["observation"]),
    )


def test_prioritized_replay_of_simulator_data_takes_priorities_from_the_loss():
    """Our simulator's transitions in a ``TensorDictPrioritizedReplayBuffer``; the SAC loss
    writes ``td_error`` into the sample and the buffer turns it into (|td| + eps) ** alpha."""
    with GymEnvSimulator("Pendulum-v1", num_envs=2, seed=0) as sim:
        data = sim.collect_steps(None, num_steps=200, random_policy=True)
    alpha, eps = 0.7, 1e-8
    buffer = TensorDictPrioritizedReplayBuffer(
        alpha=alpha, beta=0.5, eps=eps, storage=LazyTensorStorage(1_000), batch_size=64
    )
    buffer.extend(data)
    critic = DoubleQNetwork(q_config())
    loss = SACLoss(make_actor(), qvalue_network=critic.heads, action_spec=SPEC)
    loss.make_value_estimator(gamma=0.99)
    critic.bind_to_loss(loss)
    sample = buffer.sample()
    assert (sample["priority_weight"] == 1).all()  # fresh buffer: uniform priorities
    loss(sample)
    td_error = sample["td_error"]
    buffer.update_tensordict_priority(sample)
    index = sample["index"]
    once = torch.tensor([(index == i).sum() == 1 for i in index])  # duplicates: last write wins
    stored = torch.as_tensor([buffer._sampler._sum_tree[int(i)] for i in index[once]])
    torch.testing.assert_close(stored, (td_error[once].double() + eps).pow(alpha).float())
    # the next sample is weighted by those priorities
    assert buffer.sample()["priority_weight"].unique().numel() > 1


# --------------------------------------------------------------------------- GenerativeRL
class UpstreamStyleCritic(nn.Module):
    """Our rebuild of how GenerativeRL's IDQL / SRPO / GMPO critics hold their networks."""

    def __init__(self):
        super().__init__()
        self.q = DoubleQNetwork(q_config())
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.v = VNetwork(v_config())

    def v_loss(self, state, action, tau=0.7):
        with torch.no_grad():
            target_q = self.q_target(action, state)
        adv = target_q - self.v(state)
        weight = torch.where(adv > 0, tau, 1 - tau)
        return (weight * adv**2).mean()

    def q_loss(self, state, action, reward):
        q1, q2 = self.q.compute_double_q(action, state)
        return (nn.functional.mse_loss(q1, reward) + nn.functional.mse_loss(q2, reward)) / 2


def test_generativerl_algorithm_pattern_polyak_and_whole_critic_checkpoint(tmp_path):
    critic = UpstreamStyleCritic()
    q_opt = torch.optim.Adam(critic.q.parameters(), lr=1e-3)
    v_opt = torch.optim.Adam(critic.v.parameters(), lr=1e-3)
    td = batch()
    s, a, r = td["observation"], td["action"], td["next", "reward"]
    target_before = snapshot(critic.q_target)
    for _ in range(3):
        v_opt.zero_grad()
        critic.v_loss(s, a).backward()
        v_opt.step()
        q_opt.zero_grad()
        critic.q_loss(s, a, r).backward()
        q_opt.step()
        with torch.no_grad():  # upstream's Polyak loop over zipped parameters
            for p, tp in zip(critic.q.parameters(), critic.q_target.parameters(), strict=True):
                tp.data.copy_(0.995 * tp.data + 0.005 * p.data)
    assert max_change(critic.q_target, target_before) > 0
    # the whole critic saved in upstream's layout, loaded back into a fresh one
    sd = to_upstream_state_dict(critic)
    assert "q.model.q1.model.backbone.model.model.linear0.weight" in sd
    assert "q_target.model.q2.model.backbone.model.model.linear0.weight" in sd
    assert "v.model.backbone.model.linear0.weight" in sd
    torch.save(sd, tmp_path / "critic.pt")
    fresh = UpstreamStyleCritic()
    fresh.load_state_dict(torch.load(tmp_path / "critic.pt"))
    for name in ("q", "q_target"):
        torch.testing.assert_close(
            getattr(fresh, name).compute_heads(a, s), getattr(critic, name).compute_heads(a, s)
        )
    torch.testing.assert_close(fresh.v(s), critic.v(s))
    # upstream's per-head attribute path reads the trained weights
    q1, _ = critic.q.compute_double_q(a, s)
    torch.testing.assert_close(critic.q.model.q1(a, s), q1)
