"""The offline dataset recipe shared by ``iql_offline.py`` and ``idql_offline.py``.

Whole episodes of up to three behaviour policies on Pendulum-v1, collected with
``GymEnvSimulator``, written to disk with a TorchRL ``LazyMemmapStorage``
(``ReplayBuffer.dumps``) and read back (``ReplayBuffer.loads``), so that training samples only
the reloaded copy. Each step carries ``behaviour`` (the index of its policy in
:data:`BEHAVIOURS`) and ``episode`` (its episode's index in the dataset).

- ``random``: uniform random actions;
- ``sac``: a partly trained SAC actor from a short run of ``sac_pendulum.py``, sampling;
- ``controller``: :func:`swing_up_controller`, a hand-written energy-pumping swing-up with a
  PD balance at the top, that takes a uniform random action instead with probability
  ``controller_noise``.

At one state the three give different action modes (SAC's Gaussian, the controller's
bang-bang +-2 or PD torque, a uniform spread), which is what a diffusion behaviour model
has to represent and a Gaussian one cannot.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from _common import seed_everything
from easydict import EasyDict
from sac_pendulum import main as train_sac
from tensordict import TensorDict
from torchrl.data import LazyMemmapStorage, TensorDictReplayBuffer

from grl_torchrl.rl_modules import GymEnvSimulator

BEHAVIOURS = ("random", "sac", "controller")


def swing_up_controller(obs: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
    """Pendulum-v1 swing-up: pump energy with +-2 torque, PD-balance near the top.

    Pendulum-v1 integrates ``theta_ddot = 15 sin(theta) + 3 u`` (``theta = 0`` upright), so
    ``E = theta_dot**2 / 2 + 15 (cos(theta) - 1)`` is 0 at rest at the top and
    ``dE/dt = 3 u theta_dot``: the controller pushes along ``theta_dot`` while ``E < 0``
    and against it while ``E > 0``. With probability ``noise`` each step it takes a
    uniform random action instead. ``obs``: ``[*B, 3]`` -> action ``[*B, 1]``.

    >>> upright_falling_right = torch.tensor([[1.0, 0.0, 1.0]])
    >>> swing_up_controller(upright_falling_right)  # PD: -(10 * 0 + 2 * 1)
    tensor([[-2.]])
    """
    cos, sin, theta_dot = obs.unbind(-1)
    theta = torch.atan2(sin, cos)
    energy = 0.5 * theta_dot**2 + 15.0 * (cos - 1.0)
    pump = 2.0 * torch.sign(-energy * theta_dot + 1e-6)  # +1e-6: push at rest at the bottom
    balance = -(10.0 * theta + 2.0 * theta_dot)
    action = torch.where(cos > 0.85, balance, pump).clamp(-2.0, 2.0)
    if noise > 0:
        random = torch.rand_like(action) * 4.0 - 2.0
        action = torch.where(torch.rand_like(action) < noise, random, action)
    return action.unsqueeze(-1)


def behaviour_returns(data: TensorDict, names: tuple[str, ...] = BEHAVIOURS) -> dict[str, float]:
    """Mean episode return of each behaviour policy present in the (reloaded) dataset."""
    episode = data["episode"]
    rewards = data["next", "reward"].flatten()
    totals = torch.zeros(int(episode.max()) + 1).index_add_(0, episode, rewards)
    owner = torch.zeros_like(totals, dtype=torch.long).index_copy_(0, episode, data["behaviour"])
    return {
        name: float(totals[owner == i].mean())
        for i, name in enumerate(names)
        if bool((owner == i).any())
    }


def build_dataset(cfg: EasyDict, out_dir: Path) -> tuple[TensorDictReplayBuffer, dict]:
    """Trains the SAC behaviour policy, collects, saves and reloads the dataset.

    Reads ``env_id``, ``seed``, ``behaviour_sac_steps``, ``random_episodes``,
    ``behaviour_episodes`` (SAC), ``controller_episodes``, ``controller_noise``,
    ``eval_episodes``, ``num_threads`` and ``logger`` from ``cfg``. The same values give the
    same dataset, whichever example builds it; torch's RNG is reseeded with ``cfg.seed``
    after the SAC run and left where the collection ends. Returns the reloaded buffer and
    ``dict(sac=<the SAC run's result>, obs_dim=..., action_spec=...)``.
    """
    # The partly trained behaviour policy: a short SAC run (it seeds everything itself).
    sac = train_sac(
        [
            f"seed={cfg.seed}",
            f"total_steps={cfg.behaviour_sac_steps}",
            "eval_every=0",
            f"eval_episodes={cfg.eval_episodes}",
            f"num_threads={cfg.num_threads}",
            f"logger={cfg.logger}",
            f"out_dir={out_dir / 'behaviour_sac'}",
        ]
    )
    seed_everything(cfg.seed, cfg.num_threads)
    with GymEnvSimulator(cfg.env_id, seed=cfg.seed) as sim:
        parts = [
            sim.collect_steps(None, num_episodes=cfg.random_episodes, random_policy=True),
            sim.collect_episodes(sac["actor"], num_episodes=cfg.behaviour_episodes),
        ]
        if cfg.controller_episodes:
            noise = cfg.controller_noise
            parts.append(
                sim.collect_episodes(
                    lambda obs: swing_up_controller(obs, noise),
                    num_episodes=cfg.controller_episodes,
                )
            )
        obs_dim = sim.env.observation_spec["observation"].shape[-1]
        action_spec = sim.env.action_spec
    for index, part in enumerate(parts):
        part["behaviour"] = torch.full(part.shape, index)
    dataset = torch.cat(parts)
    ends = dataset["next", "done"].flatten().long()
    dataset["episode"] = ends.cumsum(0) - ends  # episode index of every step
    dataset_dir = out_dir / "dataset"
    shutil.rmtree(dataset_dir, ignore_errors=True)
    writer = TensorDictReplayBuffer(storage=LazyMemmapStorage(dataset.shape[0]))
    writer.extend(dataset)
    writer.dumps(dataset_dir)
    buffer = TensorDictReplayBuffer(storage=LazyMemmapStorage(dataset.shape[0]))
    buffer.loads(dataset_dir)
    return buffer, dict(sac=sac, obs_dim=obs_dim, action_spec=action_spec)
