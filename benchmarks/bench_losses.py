"""Per-update time of SAC (and REDQ, TD3, IQL, CQL) updates: fused losses, stock TorchRL, SB3.

One *update* is what a training loop does per gradient step: sample a batch of 256 from a
replay buffer of 10k Pendulum-shaped transitions (obs 3, action 1), compute the loss, one
backward, the optimiser step(s), the target update. Networks as in
``examples/sac_pendulum.py``: actor and critic with two hidden layers of 256, ReLU.

Variants (``--groups``):

* ``sac``: ``grl_torchrl.objectives.SACLoss`` with a ``DoubleQNetwork`` (fused), with
  TorchRL's ``ProbabilisticActor`` and with grl_torchrl's (direct ``get_dist``, as in
  ``examples/sac_pendulum.py``); stock
  ``torchrl.objectives.SACLoss`` with TorchRL's ``ValueOperator(MLP)`` critic; stock
  ``SACLoss`` with ``DoubleQNetwork.heads``; Stable-Baselines3's ``SAC.train()`` (its own
  buffer, three Adams); a plain-PyTorch, CleanRL-style update (two ``nn.Sequential`` Q
  networks, three Adams).
* ``redq``: the same three TorchRL variants for ``REDQLoss`` with 10 heads.
* ``others``: the same three for ``TD3Loss``, ``IQLLoss`` (value network: TorchRL's
  ``ValueOperator(MLP)`` in every variant, so only the Q critic differs) and ``CQLLoss``.

The variants run interleaved, ``--updates`` updates each per round, in one process with one
torch thread; the table gives the medians over rounds of the wall and process-CPU time per
update, and the median over rounds of each variant's CPU-time ratio to its reference in the
same round (on a machine shared with other jobs, CPU time and same-round ratios are far
steadier than wall times). ``--compile`` adds the fused SAC update with the loss module
under ``torch.compile`` (mode default, and ``fullgraph=True`` if it compiles).

Usage: ``python benchmarks/bench_losses.py [--rounds 15] [--updates 10] [--groups sac,redq]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded, LazyTensorStorage, TensorDictReplayBuffer
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import CQLLoss, IQLLoss, REDQLoss, SACLoss, SoftUpdate, TD3Loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from _common import skip_pandas_probe  # noqa: E402

from grl_torchrl import DoubleQNetwork, EnsembleQNetwork, objectives  # noqa: E402
from grl_torchrl.rl_modules import ProbabilisticActor as GrlProbabilisticActor  # noqa: E402

OBS, ACT, HIDDEN, BUFFER = 3, 1, 256, 10_000
SPEC = Bounded(-2.0, 2.0, shape=(ACT,))
STOCK = {"sac": SACLoss, "redq": REDQLoss, "td3": TD3Loss, "iql": IQLLoss, "cql": CQLLoss}
FUSED = {
    "sac": objectives.SACLoss,
    "redq": objectives.REDQLoss,
    "td3": objectives.TD3Loss,
    "iql": objectives.IQLLoss,
    "cql": objectives.CQLLoss,
}


def random_transitions(n: int, seed: int = 0) -> TensorDict:
    gen = torch.Generator().manual_seed(seed)
    done = torch.rand(n, 1, generator=gen) < 0.005
    return TensorDict(
        {
            "observation": torch.randn(n, OBS, generator=gen),
            "action": torch.rand(n, ACT, generator=gen) * 4 - 2,
            "next": {
                "observation": torch.randn(n, OBS, generator=gen),
                "reward": -torch.rand(n, 1, generator=gen) * 10,
                "done": done,
                "terminated": done.clone(),
                "truncated": torch.zeros_like(done),
            },
        },
        [n],
    )


def q_config() -> dict:
    return {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {
                "hidden_sizes": [ACT + OBS, HIDDEN, HIDDEN],
                "output_size": 1,
                "activation": "relu",
            },
        }
    }


def stochastic_actor(actor_cls: type = ProbabilisticActor) -> ProbabilisticActor:
    net = nn.Sequential(
        MLP(OBS, 2 * ACT, num_cells=[HIDDEN] * 2, activation_class=nn.ReLU),
        NormalParamExtractor(),
    )
    return actor_cls(
        TensorDictModule(net, ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=SPEC,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": -2.0, "high": 2.0},
        return_log_prob=True,
    )


def deterministic_actor() -> TensorDictModule:
    net = nn.Sequential(MLP(OBS, ACT, num_cells=[HIDDEN] * 2, activation_class=nn.ReLU), nn.Tanh())
    return TensorDictModule(net, ["observation"], ["action"])


def value_operator_q() -> ValueOperator:
    return ValueOperator(
        MLP(OBS + ACT, 1, num_cells=[HIDDEN] * 2, activation_class=nn.ReLU),
        in_keys=["observation", "action"],
    )


def value_operator_v() -> ValueOperator:
    return ValueOperator(
        MLP(OBS, 1, num_cells=[HIDDEN] * 2, activation_class=nn.ReLU), in_keys=["observation"]
    )


def torchrl_update(
    algo: str,
    critic_kind: str,
    batch_size: int,
    heads: int = 2,
    actor_cls: type = ProbabilisticActor,
) -> Callable:
    """One TorchRL update closure: ``critic_kind`` in ``fused``, ``value_operator``, ``heads``."""
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(BUFFER), batch_size=batch_size)
    buffer.extend(random_transitions(BUFFER))
    actor = deterministic_actor() if algo == "td3" else stochastic_actor(actor_cls)
    ensemble = (
        EnsembleQNetwork(q_config(), num_heads=heads) if heads != 2 else DoubleQNetwork(q_config())
    )
    if critic_kind == "fused":
        critic, cls = ensemble, FUSED[algo]
    elif critic_kind == "heads":
        critic, cls = ensemble.heads, STOCK[algo]
    else:
        critic, cls = value_operator_q(), STOCK[algo]
    kwargs = {}
    if algo != "cql":
        kwargs["num_qvalue_nets"] = heads
    if algo in ("sac", "redq", "cql"):
        kwargs["action_spec"] = SPEC
    if algo == "td3":
        kwargs["action_spec"] = SPEC
    if algo in ("sac", "td3", "cql"):
        kwargs["loss_function"] = "l2"
    if algo == "iql":
        loss = cls(actor, critic, value_operator_v(), **kwargs)
    else:
        loss = cls(actor, qvalue_network=critic, **kwargs)
    if critic_kind == "heads":
        ensemble.bind_to_loss(loss)  # the issue-8 way: the user's critic sees the weights
    loss.make_value_estimator(gamma=0.99)
    updater = SoftUpdate(loss, tau=0.005)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3, fused=True)
    keys = None

    def update() -> None:
        nonlocal keys
        out = loss(buffer.sample())
        if keys is None:
            keys = [k for k in out.keys() if k.startswith("loss_")]
        total = sum(out[k] for k in keys)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        updater.step()

    update.loss = loss
    return update


def sb3_update(batch_size: int) -> Callable:
    """SB3's ``SAC.train(gradient_steps=1)`` on a filled buffer (its own sampling)."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import Logger

    model = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        learning_rate=1e-3,
        buffer_size=BUFFER,
        learning_starts=BUFFER,
        batch_size=batch_size,
        ent_coef="auto_1.0",
        policy_kwargs={"net_arch": [HIDDEN, HIDDEN]},
        seed=0,
        device="cpu",
    )
    # an in-memory logger: SB3's default one creates a /tmp/SB3-<date> folder per run
    model.set_logger(Logger(folder=None, output_formats=[]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.learn(total_timesteps=BUFFER)  # random warm-up fills the buffer, sets up logger
    torch.set_num_threads(1)

    def update() -> None:
        model.train(gradient_steps=1, batch_size=batch_size)

    return update


def plain_update(batch_size: int) -> Callable:
    """CleanRL-style SAC in plain PyTorch: two Q MLPs, three Adams, index-sampled buffer."""
    data = random_transitions(BUFFER)
    obs, act = data["observation"], data["action"]
    rew, next_obs = data["next", "reward"], data["next", "observation"]
    not_done = (~data["next", "terminated"]).float()

    def mlp(n_in: int, n_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(n_in, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, n_out),
        )

    actor = mlp(OBS, 2 * ACT)
    q1, q2 = mlp(OBS + ACT, 1), mlp(OBS + ACT, 1)
    q1_t, q2_t = copy.deepcopy(q1), copy.deepcopy(q2)
    log_alpha = torch.zeros((), requires_grad=True)
    q_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=1e-3)
    a_opt = torch.optim.Adam(actor.parameters(), lr=1e-3)
    alpha_opt = torch.optim.Adam([log_alpha], lr=1e-3)
    target_entropy = -float(ACT)
    params = [*q1.parameters(), *q2.parameters()]
    target_params = [*q1_t.parameters(), *q2_t.parameters()]

    def sample(o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = actor(o).chunk(2, -1)
        std = log_std.clamp(-5, 2).exp()
        u = mean + std * torch.randn_like(mean)
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mean) / std) ** 2 - std.log() - 0.9189385332046727).sum(-1)
        logp = logp - torch.log(1 - a.pow(2) + 1e-6).sum(-1)
        return 2.0 * a, logp

    def update() -> None:
        idx = torch.randint(BUFFER, (batch_size,))
        o, a, r, o2, nd = obs[idx], act[idx], rew[idx], next_obs[idx], not_done[idx]
        alpha = log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = sample(o2)
            x2 = torch.cat([o2, a2], -1)
            q_next = torch.min(q1_t(x2), q2_t(x2)) - alpha * logp2.unsqueeze(-1)
            y = r + 0.99 * nd * q_next
        x = torch.cat([o, a], -1)
        q_loss = 0.5 * ((q1(x) - y).pow(2).mean() + (q2(x) - y).pow(2).mean())
        q_opt.zero_grad()
        q_loss.backward()
        q_opt.step()
        a_pi, logp = sample(o)
        x_pi = torch.cat([o, a_pi], -1)
        actor_loss = (alpha * logp - torch.min(q1(x_pi), q2(x_pi)).squeeze(-1)).mean()
        a_opt.zero_grad()
        actor_loss.backward()
        a_opt.step()
        alpha_loss = -(log_alpha * (logp.detach() + target_entropy)).mean()
        alpha_opt.zero_grad()
        alpha_loss.backward()
        alpha_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(target_params, params, 0.005)

    return update


def compiled_update(batch_size: int, fullgraph: bool) -> Callable:
    """The fused SAC update with the loss module compiled (``torch.compile``)."""
    update = torchrl_update("sac", "fused", batch_size)
    loss = update.loss
    compiled = torch.compile(loss, fullgraph=fullgraph)
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(BUFFER), batch_size=batch_size)
    buffer.extend(random_transitions(BUFFER))
    updater = SoftUpdate(loss, tau=0.005)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        out = compiled(buffer.sample())
        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        updater.step()

    return step


def build(groups: list[str], batch_size: int, compile_: bool) -> dict[str, tuple[str, Callable]]:
    """``name: (reference name, update)``."""
    variants: dict[str, tuple[str, Callable]] = {}
    if "sac" in groups:
        ref = "SB3 SAC.train()"
        variants["SAC fused (grl_torchrl.objectives)"] = (
            ref,
            torchrl_update("sac", "fused", batch_size),
        )
        variants["SAC fused + grl_torchrl ProbabilisticActor"] = (
            ref,
            torchrl_update("sac", "fused", batch_size, actor_cls=GrlProbabilisticActor),
        )
        variants["SAC stock + ValueOperator(MLP)"] = (
            ref,
            torchrl_update("sac", "value_operator", batch_size),
        )
        variants["SAC stock + DoubleQNetwork.heads"] = (
            ref,
            torchrl_update("sac", "heads", batch_size),
        )
        variants[ref] = (ref, sb3_update(batch_size))
        variants["SAC plain PyTorch (CleanRL-style)"] = (ref, plain_update(batch_size))
        if compile_:
            for fullgraph in (False, True):
                name = f"SAC fused, torch.compile(loss, fullgraph={fullgraph})"
                try:
                    step = compiled_update(batch_size, fullgraph)
                    step()  # compile now, outside the timed rounds
                    variants[name] = (ref, step)
                except Exception as err:  # noqa: BLE001 - reported, not hidden
                    print(f"{name}: fails: {type(err).__name__}: {str(err)[:300]}")
    for algo, heads in (("redq", 10), ("td3", 2), ("iql", 2), ("cql", 2)):
        group = "redq" if algo == "redq" else "others"
        if group not in groups:
            continue
        tag = f"{algo.upper()} ({heads} heads)"
        ref = f"{tag} stock + ValueOperator(MLP)"
        variants[f"{tag} fused (grl_torchrl.objectives)"] = (
            ref,
            torchrl_update(algo, "fused", batch_size, heads),
        )
        variants[ref] = (ref, torchrl_update(algo, "value_operator", batch_size, heads))
        variants[f"{tag} stock + EnsembleQNetwork.heads"] = (
            ref,
            torchrl_update(algo, "heads", batch_size, heads),
        )
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--updates", type=int, default=10, help="updates per variant per round")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--groups", default="sac,redq,others")
    parser.add_argument("--compile", action="store_true", help="add torch.compile variants")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    skip_pandas_probe()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    variants = build(args.groups.split(","), args.batch_size, args.compile)
    torch.set_num_threads(args.threads)
    for _, update in variants.values():  # warm-up: allocator, lazy inits
        for _ in range(3):
            update()
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (_, update) in variants.items():
            tic, cpu_tic = time.perf_counter(), time.process_time()
            for _ in range(args.updates):
                update()
            cpu[name].append((time.process_time() - cpu_tic) / args.updates * 1e3)
            wall[name].append((time.perf_counter() - tic) / args.updates * 1e3)
    print(
        f"\nper-update time, batch {args.batch_size}, {torch.get_num_threads()} thread(s), "
        f"{args.rounds} interleaved rounds x {args.updates} updates; medians over rounds. "
        "'ratio' is the median over rounds of (this variant / reference) in the same round, "
        "on process CPU time, which other processes' load disturbs least."
    )
    print(f"{'variant':48s} {'wall ms':>8s} {'CPU ms':>8s} {'ratio':>6s}  reference")
    for name, (ref, _) in variants.items():
        ratios = [a / b for a, b in zip(cpu[name], cpu[ref], strict=True)]
        print(
            f"{name:48s} {statistics.median(wall[name]):8.2f} {statistics.median(cpu[name]):8.2f}"
            f" {statistics.median(ratios):5.2f}x  {ref}"
        )


if __name__ == "__main__":
    main()
