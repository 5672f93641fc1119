"""Scaling benchmark: in-process ``GymEnvSimulator`` vs ``make_collector`` workers.

For each env, the in-process simulator with 4 envs is the baseline; the process and Ray
backends run 1, 2 and 4 workers of 4 envs each. Every run steps random actions for about
``seconds`` seconds after one warm-up batch (start-up excluded) and reports env steps per
second and the ratio to the baseline. Envs:

- ``Pendulum-v1``: a cheap CPU-bound step (tens of microseconds);
- ``HalfCheetah-v5``: a heavier CPU-bound step (MuJoCo, needs ``grl_torchrl[mujoco]``);
- ``SleepPendulum-v0``: Pendulum that sleeps 1 ms per step, standing for an external
  simulator the worker waits on.

On a machine with C cores, CPU-bound envs gain at most about C times, less the workers'
overhead; a waiting-dominated env gains with every worker until the cores are busy. The
last column says which regime the measurement shows (2 process workers vs in-process).

Run::

    python benchmarks/bench_collectors.py                 # all envs, ~4 min
    python benchmarks/bench_collectors.py Pendulum-v1 seconds=5
"""

from __future__ import annotations

import sys
import time

import gymnasium
from gymnasium.envs.classic_control.pendulum import PendulumEnv

SLEEP_ENV_ID = "bench_collectors:SleepPendulum-v0"


class SleepPendulum(PendulumEnv):
    """Pendulum whose every step also waits 1 ms (an external simulator's round trip)."""

    def step(self, action):
        time.sleep(1e-3)
        return super().step(action)


if "SleepPendulum-v0" not in gymnasium.registry:
    gymnasium.register("SleepPendulum-v0", entry_point=SleepPendulum, max_episode_steps=200)

ENVS_PER_WORKER = 4
STEPS_PER_ENV = 50  # per batch


def in_process(env_id: str, seconds: float) -> float:
    from grl_torchrl.rl_modules import GymEnvSimulator

    name = env_id.rpartition(":")[2]
    with GymEnvSimulator(name, num_envs=ENVS_PER_WORKER, seed=0) as sim:
        chunk = ENVS_PER_WORKER * STEPS_PER_ENV
        sim.collect_steps(None, num_steps=chunk, random_policy=True)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            steps += sim.collect_steps(None, num_steps=chunk, random_policy=True).numel()
        return steps / (time.perf_counter() - start)


def with_workers(env_id: str, backend: str, workers: int, seconds: float) -> float:
    from grl_torchrl.rl_modules import make_collector

    options = {"remote_configs": {"num_cpus": 1}} if backend == "ray" else None
    with make_collector(
        env_id,
        None,
        backend=backend,
        num_workers=workers,
        envs_per_worker=ENVS_PER_WORKER,
        frames_per_batch=workers * ENVS_PER_WORKER * STEPS_PER_ENV,
        seed=0,
        backend_options=options,
    ) as collector:
        batches = iter(collector)
        next(batches)  # warm-up: start-up and first resets excluded
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            steps += next(batches).numel()
        return steps / (time.perf_counter() - start)


def main(argv: list[str]) -> None:
    seconds = 3.0
    env_ids = []
    for arg in argv:
        if arg.startswith("seconds="):
            seconds = float(arg.partition("=")[2])
        else:
            env_ids.append(arg)
    env_ids = env_ids or ["Pendulum-v1", "HalfCheetah-v5", SLEEP_ENV_ID]

    import ray

    from grl_torchrl.rl_modules.collectors.ray_support import RaySession

    # One Ray runtime for all Ray runs (make_collector then uses it rather than starting
    # its own each time); 4 logical CPUs so that 4 one-CPU workers fit on 2 cores.
    session = RaySession(None, {"num_cpus": 4})
    ray.init(**session.init_config)
    rows = []
    try:
        for env_id in env_ids:
            base = in_process(env_id, seconds)
            row = {"env": env_id.rpartition(":")[2], "in-process": base}
            # interleaved so that load from other jobs hits both backends alike
            for workers in (1, 2, 4):
                for backend in ("process", "ray"):
                    row[f"{backend} x{workers}"] = with_workers(env_id, backend, workers, seconds)
            rows.append(row)
            print(row, flush=True)
    finally:
        ray.shutdown()
        session.close()

    columns = ["in-process"] + [f"{b} x{w}" for w in (1, 2, 4) for b in ("process", "ray")]
    print(f"\nsteps/s (ratio to in-process), {ENVS_PER_WORKER} envs per worker, random actions\n")
    print("| env | " + " | ".join(columns) + " | regime |")
    print("|---" * (len(columns) + 2) + "|")
    for row in rows:
        base = row["in-process"]
        cells = [f"{base:,.0f}"] + [f"{row[c]:,.0f} ({row[c] / base:.2f}x)" for c in columns[1:]]
        speedup = row["process x2"] / base
        regime = (
            "waiting-dominated: scales with workers"
            if speedup > 1.3
            else "CPU-bound: no gain on these cores"
        )
        print(f"| {row['env']} | " + " | ".join(cells) + f" | {regime} |")


if __name__ == "__main__":
    main(sys.argv[1:])
