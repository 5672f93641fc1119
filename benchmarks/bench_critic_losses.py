"""Per-update cost of TorchRL losses: our ensembles against TorchRL's own critic.

One update = the loss's forward + backward of the summed loss terms + one Adam step over
``loss.parameters()`` (target updates excluded), as TorchRL's reference scripts do it. Each case
builds the same loss twice, on the same actor and the same batches:

* ``torchrl``: one ``ValueOperator(MLP(...))`` that the loss expands to ``num_heads`` copies
  (how TorchRL's sota SAC / IQL / REDQ scripts build their critic);
* ``grl``: ``DoubleQNetwork`` / ``EnsembleQNetwork(num_heads=N)``, given to the loss as
  ``critic.heads`` and bound back with ``critic.bind_to_loss(loss)``.

Cases: SAC (2 heads, batch 256 and 64), REDQ (10 heads, ``REDQLoss`` and the
``REDQLoss_deprecated`` that TorchRL's REDQ script uses), IQL and TD3 (2 heads). Both variants
of a case run interleaved in one process, in alternating order, for ``--repeats`` rounds of
``--steps`` updates; we report the median of the per-round mean update time and the ratio
grl / torchrl (below 1.0: ours is faster).

Usage: ``python benchmarks/bench_critic_losses.py [--threads 1] [--repeats 15] [--steps 20]
[--cases sac256,sac64,redq,redq_deprecated,iql,td3] [--obs 3 --act 1]`` (Pendulum-v1 sizes by
default; ``--obs 17 --act 6`` for HalfCheetah).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torchrl.data import Bounded
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import IQLLoss, REDQLoss, SACLoss, TD3Loss

from grl_torchrl import EnsembleQNetwork, VNetwork

# name: (loss, num_heads, batch, hidden)
CASES = {
    "sac256": ("sac", 2, 256, [256, 256]),
    "sac64": ("sac", 2, 64, [256, 256]),
    "redq": ("redq", 10, 256, [256, 256]),
    "redq_deprecated": ("redq_deprecated", 10, 256, [256, 256]),
    "iql": ("iql", 2, 256, [256, 256]),
    "td3": ("td3", 2, 256, [256, 256]),
}


def make_actor(obs: int, act: int, hidden: list[int], spec: Bounded, deterministic: bool):
    if deterministic:  # TD3
        net = torch.nn.Sequential(MLP(in_features=obs, out_features=act, num_cells=hidden))
        return TensorDictModule(net, in_keys=["observation"], out_keys=["action"])
    net = torch.nn.Sequential(
        MLP(in_features=obs, out_features=2 * act, num_cells=hidden), NormalParamExtractor()
    )
    return ProbabilisticActor(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=spec,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": spec.space.low, "high": spec.space.high},
        return_log_prob=True,
    )


def make_critic(variant: str, obs: int, act: int, hidden: list[int], heads: int):
    """Returns ``(what the loss is given, our ensemble or None)``."""
    if variant == "torchrl":
        mlp = MLP(in_features=obs + act, out_features=1, num_cells=hidden)
        return ValueOperator(mlp, in_keys=["action", "observation"]), None
    cfg = {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {"hidden_sizes": [obs + act, *hidden], "output_size": 1, "activation": "relu"},
        }
    }
    critic = EnsembleQNetwork(cfg, num_heads=heads)
    return critic.heads, critic


def make_value(variant: str, obs: int, hidden: list[int]):
    if variant == "torchrl":
        mlp = MLP(in_features=obs, out_features=1, num_cells=hidden)
        return ValueOperator(mlp, in_keys=["observation"])
    cfg = {
        "backbone": {
            "type": "MultiLayerPerceptron",
            "args": {"hidden_sizes": [obs, *hidden], "output_size": 1, "activation": "relu"},
        }
    }
    return VNetwork(cfg)


def make_loss(case: str, variant: str, actor_state: dict, obs: int, act: int):
    kind, heads, _, hidden = CASES[case]
    spec = Bounded(-1.0, 1.0, shape=(act,))
    actor = make_actor(obs, act, hidden, spec, deterministic=kind == "td3")
    actor.load_state_dict(actor_state[kind == "td3"])  # the same actor for both variants
    qvalue, critic = make_critic(variant, obs, act, hidden, heads)
    if kind == "sac":
        loss = SACLoss(actor, qvalue_network=qvalue, num_qvalue_nets=heads, action_spec=spec)
    elif kind == "redq":
        loss = REDQLoss(actor, qvalue_network=qvalue, num_qvalue_nets=heads, action_spec=spec)
    elif kind == "redq_deprecated":
        from torchrl.objectives.deprecated import REDQLoss_deprecated

        loss = REDQLoss_deprecated(actor, qvalue_network=qvalue, num_qvalue_nets=heads)
    elif kind == "iql":
        value = make_value(variant, obs, hidden)
        loss = IQLLoss(actor, qvalue_network=qvalue, value_network=value, num_qvalue_nets=heads)
    elif kind == "td3":
        loss = TD3Loss(actor, qvalue_network=qvalue, num_qvalue_nets=heads, action_spec=spec)
    else:
        raise ValueError(f"unknown case {case!r}")
    loss.make_value_estimator(gamma=0.99)
    if critic is not None:
        critic.bind_to_loss(loss)
    return loss


def make_batches(n: int, batch: int, obs: int, act: int, seed: int) -> list[TensorDict]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        out.append(
            TensorDict(
                {
                    "observation": torch.randn(batch, obs, generator=gen),
                    "action": torch.rand(batch, act, generator=gen) * 2 - 1,
                    ("next", "observation"): torch.randn(batch, obs, generator=gen),
                    ("next", "reward"): torch.randn(batch, 1, generator=gen),
                    ("next", "done"): torch.zeros(batch, 1, dtype=torch.bool),
                    ("next", "terminated"): torch.zeros(batch, 1, dtype=torch.bool),
                },
                [batch],
            )
        )
    return out


def make_update(loss, batches: list[TensorDict]):
    optim = torch.optim.Adam(loss.parameters(), lr=3e-4)
    state = {"i": 0}

    def update() -> None:
        td = batches[state["i"] % len(batches)].clone()
        state["i"] += 1
        out = loss(td)
        total = sum(v for k, v in out.items() if k.startswith("loss_"))
        optim.zero_grad(set_to_none=True)
        total.backward()
        optim.step()

    return update


def run_case(case: str, args: argparse.Namespace) -> dict[str, float]:
    kind, heads, batch, hidden = CASES[case]
    torch.manual_seed(args.seed)
    spec = Bounded(-1.0, 1.0, shape=(args.act,))
    actor_state = {
        False: make_actor(args.obs, args.act, hidden, spec, False).state_dict(),
        True: make_actor(args.obs, args.act, hidden, spec, True).state_dict(),
    }
    batches = make_batches(8, batch, args.obs, args.act, args.seed)
    updates = {
        v: make_update(make_loss(case, v, actor_state, args.obs, args.act), batches)
        for v in ("torchrl", "grl")
    }
    for update in updates.values():  # warm-up
        for _ in range(3):
            update()
    times: dict[str, list[float]] = {v: [] for v in updates}
    for r in range(args.repeats):
        order = ("torchrl", "grl") if r % 2 == 0 else ("grl", "torchrl")
        for variant in order:
            start = time.perf_counter()
            for _ in range(args.steps):
                updates[variant]()
            times[variant].append((time.perf_counter() - start) / args.steps)
    med = {v: statistics.median(t) for v, t in times.items()}
    best = {v: min(t) for v, t in times.items()}
    return {
        "heads": heads,
        "batch": batch,
        "torchrl_ms": 1e3 * med["torchrl"],
        "grl_ms": 1e3 * med["grl"],
        "ratio": med["grl"] / med["torchrl"],
        "ratio_best": best["grl"] / best["torchrl"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--obs", type=int, default=3)
    parser.add_argument("--act", type=int, default=1)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"--cases: unknown {unknown}; choose from {list(CASES)}")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # TorchRL's target-updater warning
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), obs {args.obs}, act {args.act}, "
        f"{args.repeats} rounds x {args.steps} updates per variant, interleaved"
    )
    print(
        f"{'case':<16}{'heads':>6}{'batch':>6}{'torchrl ms':>12}{'grl ms':>10}{'ratio':>8}"
        f"{'best':>8}"
    )
    for case in cases:
        r = run_case(case, args)
        print(
            f"{case:<16}{r['heads']:>6}{r['batch']:>6}{r['torchrl_ms']:>12.2f}{r['grl_ms']:>10.2f}"
            f"{r['ratio']:>8.2f}{r['ratio_best']:>8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
