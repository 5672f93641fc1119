"""Writes a Minari dataset of Hopper-v5 from the package's own SAC: a "medium-replay"-like mix.

1. A short SAC run (``examples/sac_pendulum.py`` with ``env_id=Hopper-v5``, imported and run
   here) gives a partly trained policy.
2. ``GymEnvSimulator`` collects whole episodes of three behaviours: ``random`` (uniform
   actions), ``sac`` (the partly trained actor, sampling) and ``sac_noisy`` (the same actor
   taking a uniform random action with probability ``noise``), the last two until each
   holds at least ``sac_transitions`` / ``noisy_transitions`` steps.
3. :func:`grl_torchrl.data.write_minari_dataset` writes them as the Minari dataset
   ``dataset_id`` under ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``), with
   D4RL's reference returns for Hopper (random -20.27, expert 3234.3) as Minari's
   ``ref_min_score`` / ``ref_max_score``, so that scores can be normalised as D4RL's are.

The observations are stored exactly as MuJoCo returns them (float64; the simulator runs with
``double_to_float=False`` and the actor sees a float32 copy).

Run::

    python examples/make_hopper_dataset.py                       # ~55k transitions
    python examples/idql_offline.py dataset=grl/hopper/sac-mixed-v0

Output: the dataset, and ``runs/make_hopper_dataset/seed<seed>/`` (the SAC run and
``summary.json``: per-behaviour episode counts, transitions and mean returns, wall time).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from _common import (
    Option,
    defaults,
    known_env_id,
    parse_options,
    seed_everything,
    skip_pandas_probe,
)
from sac_pendulum import main as train_sac
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from grl_torchrl.data import D4RL_REF_SCORES, write_minari_dataset
from grl_torchrl.rl_modules import GymEnvSimulator

OPTIONS = dict(
    env_id=Option("Hopper-v5", "gymnasium id of a continuous-action (Box) env", check=known_env_id),
    dataset_id=Option("grl/hopper/sac-mixed-v0", "Minari id of the dataset to write"),
    seed=Option(0, "random seed", low=0),
    sac_steps=Option(30_000, "env steps of the SAC run (warm-up included)", low=1),
    sac_random_steps=Option(5_000, "uniform-random warm-up steps of the SAC run", low=1),
    random_episodes=Option(200, "episodes of the uniform random policy", low=0),
    sac_transitions=Option(30_000, "at least this many steps of the SAC actor, sampling", low=0),
    noisy_transitions=Option(
        20_000, "at least this many steps of the SAC actor with random actions", low=0
    ),
    noise=Option(0.3, "probability of a uniform random action in sac_noisy's steps", low=0, high=1),
    num_threads=Option(1, "torch intra-op threads", low=1),
    out_dir=Option("", "output folder ('' = runs/make_hopper_dataset/seed<seed>)"),
)
config = defaults(OPTIONS)


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_options(
        OPTIONS,
        argv,
        check=lambda c: (
            None if c.sac_random_steps <= c.sac_steps else "sac_random_steps must be <= sac_steps"
        ),
    )
    skip_pandas_probe()
    out_dir = Path(cfg.out_dir or f"runs/make_hopper_dataset/seed{cfg.seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sac = train_sac(
        [
            f"env_id={cfg.env_id}",
            f"seed={cfg.seed}",
            f"total_steps={cfg.sac_steps}",
            f"random_steps={cfg.sac_random_steps}",
            "eval_every=0",
            f"num_threads={cfg.num_threads}",
            f"out_dir={out_dir / 'behaviour_sac'}",
        ]
    )
    sac_time = time.perf_counter() - start
    seed_everything(cfg.seed, cfg.num_threads)
    actor = sac["actor"]

    @torch.no_grad()
    def sac_policy(obs: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        with set_exploration_type(ExplorationType.RANDOM):
            td = TensorDict(observation=obs.float(), batch_size=obs.shape[:-1])
            action = actor(td)["action"]
        if noise > 0:
            random = torch.rand_like(action) * 2 - 1  # Hopper's actions lie in [-1, 1]
            action = torch.where(torch.rand_like(action[..., :1]) < noise, random, action)
        return action

    with GymEnvSimulator(cfg.env_id, seed=cfg.seed, double_to_float=False) as sim:
        parts = {
            "random": sim.collect_episodes(
                None, num_episodes=cfg.random_episodes, random_policy=True
            ),
            "sac": sim.collect_episodes(sac_policy, num_steps=cfg.sac_transitions),
            "sac_noisy": sim.collect_episodes(
                lambda obs: sac_policy(obs, cfg.noise), num_steps=cfg.noisy_transitions
            ),
        }
    summary = {}
    for name, part in parts.items():
        ends = part["next", "done"].flatten()
        returns = torch.zeros(int(ends.sum())).index_add_(
            0, ends.long().cumsum(0) - ends.long(), part["next", "reward"].flatten()
        )
        summary[name] = dict(
            episodes=len(returns),
            transitions=part.numel(),
            return_mean=float(returns.mean()),
            return_max=float(returns.max()),
        )
    data = torch.cat([part.exclude("collector") for part in parts.values()])
    ref_min, ref_max = D4RL_REF_SCORES["hopper"]
    write_minari_dataset(
        cfg.dataset_id,
        data,
        cfg.env_id,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        algorithm_name="grl_torchrl SAC (partly trained) + random + epsilon-random",
        description=f"make_hopper_dataset.py {dict(cfg)}",
    )
    wall = time.perf_counter() - start
    result = dict(
        dataset_id=cfg.dataset_id,
        transitions=data.numel(),
        behaviours=summary,
        sac_eval_return=sac["return_mean"],
        sac_time_s=sac_time,
        wall_time_s=wall,
    )
    (out_dir / "summary.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
