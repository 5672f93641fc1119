"""Wall time and return: examples/sac_pendulum.py against Stable-Baselines3's SAC.

Both train on Pendulum-v1 with the hyperparameters of ``examples/sac_pendulum.py`` (the
same network sizes, learning rate, batch size, buffer, warm-up, ``train_freq`` env steps
then as many gradient steps, tau, gamma, initial temperature and target entropy) and the
same env-step budget, one after the other in this process with the same torch thread
count. Timed: from building the agent to the end of training (imports and the final
evaluation excluded; our periodic evaluations are switched off). Both final policies are
scored by the same ``GymEnvSimulator.evaluate`` on the same 10 seeded episodes with
deterministic actions.

Stable-Baselines3 is a dev dependency (``pip install stable-baselines3``). Run::

    python benchmarks/compare_sb3.py                  # seed 0, the example's defaults
    python benchmarks/compare_sb3.py seed=1 total_steps=10000

Any ``key=value`` of the example's config is accepted and applied to both.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from _common import parse_overrides  # noqa: E402
from sac_pendulum import config as sac_config  # noqa: E402
from sac_pendulum import main as run_ours  # noqa: E402

from grl_torchrl.rl_modules import GymEnvSimulator, evaluation_summary  # noqa: E402


def run_sb3(cfg) -> tuple[float, dict]:
    """Trains SB3's SAC with ``cfg``; returns (seconds, evaluation summary)."""
    from stable_baselines3 import SAC

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
    model.learn(total_timesteps=cfg.total_steps)
    seconds = time.perf_counter() - tic

    def policy(observation: torch.Tensor) -> torch.Tensor:
        action, _ = model.predict(observation.numpy(), deterministic=True)
        return torch.as_tensor(action)

    # Same simulator seed as the example's final evaluation: the same 10 initial states.
    with GymEnvSimulator(cfg.env_id, seed=cfg.seed) as sim:
        summary = evaluation_summary(sim.evaluate(policy, num_episodes=cfg.eval_episodes))
    return seconds, summary


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_overrides(sac_config, argv)
    cfg.eval_every = 0
    cfg.out_dir = cfg.out_dir or f"runs/compare_sb3/seed{cfg.seed}"
    overrides = [f"{key}={value}" for key, value in cfg.items()]

    ours = run_ours(overrides)
    sb3_seconds, sb3 = run_sb3(cfg)

    ratio = ours["train_time_s"] / sb3_seconds
    rows = [
        (
            "grl_torchrl + TorchRL SAC",
            ours["train_time_s"],
            ours["return_mean"],
            ours["return_std"],
        ),
        ("Stable-Baselines3 SAC", sb3_seconds, sb3["return_mean"], sb3["return_std"]),
    ]
    print(
        f"\nPendulum-v1, {cfg.total_steps} env steps, seed {cfg.seed}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    print(f"{'':28s} {'train wall time':>16s} {'mean return (10 ep.)':>22s}")
    for name, seconds, mean, std in rows:
        print(f"{name:28s} {seconds:14.1f} s {mean:14.1f} ± {std:5.1f}")
    print(f"wall-time ratio ours / SB3: {ratio:.2f}x")
    return {
        "ours_s": ours["train_time_s"],
        "sb3_s": sb3_seconds,
        "ratio": ratio,
        "ours_return": ours["return_mean"],
        "sb3_return": sb3["return_mean"],
    }


if __name__ == "__main__":
    main(sys.argv[1:])
