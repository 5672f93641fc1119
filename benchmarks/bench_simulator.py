"""Throughput of ``GymEnvSimulator`` against raw gymnasium and a naive TorchRL collector.

For Pendulum-v1 and CartPole-v1 with a random policy, each contender steps the same
number of transitions per round; rounds are interleaved (so background load hits all
contenders alike) and the median steps/s is reported, with its ratio to raw gymnasium:

- ``raw``: a plain gymnasium loop (``gymnasium.make`` or a ``SyncVectorEnv`` of 16 envs),
  sampling ``action_space``;
- ``naive``: ``Collector(GymEnv(env_id), policy=None)`` (1 env) or a ``Collector`` over
  ``GymWrapper(SyncVectorEnv(..., SAME_STEP))`` (16 envs), random policy;
- ``sim``: ``GymEnvSimulator.collect_steps(None, num_steps=..., random_policy=True)``;
- ``sim x8``: the same frames collected by calls of 8 steps (an online loop's pattern).

Then ``evaluate`` of 10 Pendulum episodes with a small MLP policy, against a raw
gymnasium loop running the same policy one observation at a time.

Goals (2-core machine): 16 envs >= 0.5x raw; 1 env >= 0.3x raw and >= 1x naive;
evaluate >= 0.5x raw. Run: ``python benchmarks/bench_simulator.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import gymnasium
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import GymEnv, GymWrapper

from grl_torchrl.rl_modules import GymEnvSimulator


def raw_loop(env_id: str, num_envs: int, seed: int = 0):
    if num_envs == 1:
        env = gymnasium.make(env_id)
        env.reset(seed=seed)
        env.action_space.seed(seed)

        def run(frames: int) -> None:
            for _ in range(frames):
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                if terminated or truncated:
                    env.reset()

    else:
        env = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(env_id)] * num_envs)
        env.reset(seed=seed)
        env.action_space.seed(seed)

        def run(frames: int) -> None:
            for _ in range(frames // num_envs):
                env.step(env.action_space.sample())

    return run, env.close


def naive_collector(env_id: str, num_envs: int):
    if num_envs == 1:
        env = GymEnv(env_id)
    else:
        mode = gymnasium.vector.AutoresetMode.SAME_STEP
        vec = gymnasium.vector.SyncVectorEnv(
            [lambda: gymnasium.make(env_id)] * num_envs, autoreset_mode=mode
        )
        env = GymWrapper(vec)
    collectors = {}

    def run(frames: int) -> None:
        # one collector per batch size, built once (not timed after the warm-up round)
        if frames not in collectors:
            collectors[frames] = iter(
                Collector(
                    env,
                    None,
                    frames_per_batch=frames,
                    total_frames=-1,
                    auto_register_policy_transforms=False,
                )
            )
        next(collectors[frames])

    return run, env.close


def sim_collect(env_id: str, num_envs: int, chunk: int | None = None):
    sim = GymEnvSimulator(env_id, num_envs=num_envs, seed=0)

    def run(frames: int) -> None:
        step = frames if chunk is None else chunk * num_envs
        for _ in range(frames // step):
            sim.collect_steps(None, num_steps=step, random_policy=True)

    return run, sim.close


def measure(contenders: dict, frames: int, rounds: int) -> dict[str, float]:
    for run, _ in contenders.values():  # warm-up (env checkers, lazy builds, caches)
        run(frames)
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (run, _) in contenders.items():
            start = time.perf_counter()
            run(frames)
            times[name].append(frames / (time.perf_counter() - start))
    for _, close in contenders.values():
        close()
    return {name: statistics.median(values) for name, values in times.items()}


def small_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
    )


def bench_evaluate(rounds: int, num_episodes: int = 10) -> None:
    net = small_mlp()
    actor = TensorDictModule(net, in_keys=["observation"], out_keys=["action"])
    env = gymnasium.make("Pendulum-v1")
    env.reset(seed=0)

    def raw(_: int) -> None:
        with torch.no_grad():
            for _ in range(num_episodes):
                obs, _ = env.reset()
                done = False
                while not done:
                    action = net(torch.as_tensor(obs)).numpy()
                    obs, _, terminated, truncated, _ = env.step(action)
                    done = terminated or truncated

    contenders = {"raw": (raw, env.close)}
    sims = {n: GymEnvSimulator("Pendulum-v1", num_envs=n, seed=0) for n in (1, 10)}
    for n, sim in sims.items():
        contenders[f"sim envs={n}"] = (
            lambda _, sim=sim: sim.evaluate(actor, num_episodes=num_episodes),
            sim.close,
        )
    # one "frame" here is one evaluation of num_episodes episodes: report episodes/s
    result = measure(contenders, 1, rounds)
    print(f"\nevaluate, {num_episodes} Pendulum-v1 episodes, MLP 3-64-64-1 policy (episodes/s)")
    for name, value in result.items():
        ratio = value / result["raw"]
        print(f"  {name:<14} {value * num_episodes:10.1f}  ratio {ratio:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print("collect_steps throughput, random policy (median steps/s over interleaved rounds)")
    for env_id in ("Pendulum-v1", "CartPole-v1"):
        for num_envs in (1, 16):
            frames = 2048 if num_envs == 1 else 4096
            contenders = {
                "raw": raw_loop(env_id, num_envs),
                "naive": naive_collector(env_id, num_envs),
                "sim": sim_collect(env_id, num_envs),
                "sim x8": sim_collect(env_id, num_envs, chunk=8),
            }
            result = measure(contenders, frames, args.rounds)
            line = "  ".join(
                f"{name} {value:8.0f} ({value / result['raw']:.2f}x)"
                for name, value in result.items()
            )
            print(f"  {env_id:<12} envs={num_envs:<3} {line}", flush=True)
            print(f"  {'':<21} sim/naive = {result['sim'] / result['naive']:.2f}", flush=True)
    bench_evaluate(args.rounds)


if __name__ == "__main__":
    main()
