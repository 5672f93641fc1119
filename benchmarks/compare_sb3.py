"""Wall time and return: examples/sac_pendulum.py against Stable-Baselines3's SAC.

Both train on Pendulum-v1 with the hyperparameters of ``examples/sac_pendulum.py`` (the
same network sizes, learning rate, batch size, buffer, warm-up, ``train_freq`` env steps
then as many gradient steps, tau, gamma, initial temperature and target entropy) and the
same env-step budget. For each seed the two run AT THE SAME TIME, in two worker processes
with one torch thread each, so that whatever else loads the machine slows both alike.
Timed: from building the agent to the end of training (imports and the final evaluation
excluded; our periodic evaluations are switched off). Both final policies are scored by the
same ``GymEnvSimulator.evaluate`` on the same 10 seeded episodes with deterministic actions.

Stable-Baselines3 is a dev dependency (``pip install stable-baselines3``). Run::

    python benchmarks/compare_sb3.py                        # seeds 0, 1, 2, the defaults
    python benchmarks/compare_sb3.py seeds=0 total_steps=10000

``seeds=`` takes a comma-separated list; any other ``key=value`` option of the example (its ``--help``
lists them) is applied to both.
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from _common import parse_options  # noqa: E402
from easydict import EasyDict  # noqa: E402
from sac_pendulum import OPTIONS as SAC_OPTIONS  # noqa: E402
from sac_pendulum import check_options as check_sac_options  # noqa: E402
from sac_pendulum import main as run_ours  # noqa: E402

from grl_torchrl.rl_modules import GymEnvSimulator, evaluation_summary  # noqa: E402


def run_sb3(cfg) -> tuple[float, dict]:
    """Trains SB3's SAC with ``cfg``; returns (seconds, evaluation summary)."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import Logger

    torch.set_num_threads(cfg.num_threads)
    tic = time.perf_counter()
    model = SAC(
        "MlpPolicy",
        cfg.env_id,
        learning_rate=cfg.lr,
        buffer_size=cfg.buffer_size,
        learning_starts=cfg.random_steps,
        batch_size=cfg.batch_size,
        tau=cfg.tau,
        gamma=cfg.gamma,
        train_freq=(cfg.train_freq, "step"),
        gradient_steps=cfg.train_freq,
        ent_coef=f"auto_{cfg.alpha_init}",
        target_entropy="auto",
        policy_kwargs={"net_arch": [cfg.hidden_size, cfg.hidden_size]},
        seed=cfg.seed,
        device="cpu",
    )
    # an in-memory logger: SB3's default one creates a /tmp/SB3-<date> folder per run
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(total_timesteps=cfg.total_steps)
    seconds = time.perf_counter() - tic

    def policy(observation: torch.Tensor) -> torch.Tensor:
        action, _ = model.predict(observation.numpy(), deterministic=True)
        return torch.as_tensor(action)

    # Same simulator seed as the example's final evaluation: the same 10 initial states.
    with GymEnvSimulator(cfg.env_id, seed=cfg.seed) as sim:
        summary = evaluation_summary(sim.evaluate(policy, num_episodes=cfg.eval_episodes))
    return seconds, summary


def run_ours_job(overrides: list[str]) -> dict:
    """Worker: the example, reduced to numbers (the networks stay in the worker)."""
    result = run_ours(overrides)
    return {k: result[k] for k in ("train_time_s", "return_mean", "return_std")}


def run_sb3_job(cfg) -> dict:
    """Worker: SB3's SAC, reduced to numbers."""
    seconds, summary = run_sb3(cfg)
    return {
        "train_time_s": seconds,
        "return_mean": summary["return_mean"],
        "return_std": summary["return_std"],
    }


def compare_seed(cfg, pool: ProcessPoolExecutor) -> dict:
    """Ours and SB3 on ``cfg.seed``, started together in the two worker processes."""
    overrides = [f"{key}={value}" for key, value in cfg.items()]
    ours_future = pool.submit(run_ours_job, overrides)
    sb3_future = pool.submit(run_sb3_job, cfg)
    ours, sb3 = ours_future.result(), sb3_future.result()
    return {
        "seed": cfg.seed,
        "ours_s": ours["train_time_s"],
        "sb3_s": sb3["train_time_s"],
        "ratio": ours["train_time_s"] / sb3["train_time_s"],
        "ours_return": ours["return_mean"],
        "ours_std": ours["return_std"],
        "sb3_return": sb3["return_mean"],
        "sb3_std": sb3["return_std"],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    argv = list(argv or ())
    seeds_args = [a for a in argv if a.startswith("seeds=")]
    argv = [a for a in argv if not a.startswith("seeds=")]
    try:
        seeds = [int(x) for x in (seeds_args[-1][6:] if seeds_args else "0,1,2").split(",")]
    except ValueError:
        raise SystemExit(f"seeds: expected comma-separated ints, got {seeds_args[-1]!r}") from None
    for seed in seeds:
        SAC_OPTIONS["seed"].validate("seeds", seed)
    base = parse_options(SAC_OPTIONS, argv, check=check_sac_options)
    base.eval_every = 0
    rows = []
    # spawn: fresh interpreters (no forked torch/OpenMP state); the pool's context manager
    # joins both workers before returning
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        for seed in seeds:
            cfg = EasyDict(base, seed=seed)
            cfg.out_dir = base.out_dir or f"runs/compare_sb3/seed{seed}"
            rows.append(compare_seed(cfg, pool))
            row = rows[-1]
            print(
                f"seed {seed}: ours {row['ours_s']:.1f} s, {row['ours_return']:.1f} "
                f"± {row['ours_std']:.1f}; SB3 {row['sb3_s']:.1f} s, {row['sb3_return']:.1f} "
                f"± {row['sb3_std']:.1f}; wall-time ratio {row['ratio']:.2f}x",
                flush=True,
            )
    print(
        f"\nPendulum-v1, {base.total_steps} env steps, ours and SB3 concurrently, "
        f"{base.num_threads} torch thread(s) each"
    )
    print(
        f"{'seed':>4s} {'ours s':>8s} {'SB3 s':>8s} {'ratio':>6s} {'ours return':>16s} "
        f"{'SB3 return':>16s}"
    )
    for r in rows:
        print(
            f"{r['seed']:4d} {r['ours_s']:8.1f} {r['sb3_s']:8.1f} {r['ratio']:5.2f}x "
            f"{r['ours_return']:8.1f} ± {r['ours_std']:5.1f} {r['sb3_return']:8.1f} "
            f"± {r['sb3_std']:5.1f}"
        )
    if len(rows) > 1:
        print(f"median wall-time ratio: {statistics.median(r['ratio'] for r in rows):.2f}x")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
