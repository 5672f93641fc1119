"""The offline datasets of ``iql_offline.py`` and ``idql_offline.py``.

``dataset=<Minari id>`` reads a Minari dataset (a local one under ``$MINARI_DATASETS_PATH``,
e.g. from ``make_hopper_dataset.py``, else TorchRL downloads it) with
:class:`grl_torchrl.data.MinariExperienceReplay`, and the examples evaluate on the env the
dataset records. ``dataset=<path to a .hdf5>`` reads a D4RL file with
:class:`grl_torchrl.data.D4RLExperienceReplay`; ``env_id`` then names its env. The
reference returns of such datasets are the mean and best episode return in them; a
normalised score is reported where reference scores are known
(:func:`grl_torchrl.data.reference_scores`).

``dataset=''`` (the default) builds the examples' own data: whole episodes of up to three
behaviour policies on ``env_id`` (Pendulum-v1 by default), collected with
``GymEnvSimulator``, written to disk with a TorchRL ``LazyMemmapStorage``
(``ReplayBuffer.dumps``) and read back (``ReplayBuffer.loads``), so that training samples
only the reloaded copy. Each step carries ``behaviour`` (the index of its policy in
:data:`BEHAVIOURS`) and ``episode`` (its episode's index in the dataset).

- ``random``: uniform random actions;
- ``sac``: a partly trained SAC actor from a short run of ``sac_pendulum.py``, sampling;
- ``controller``: :func:`swing_up_controller`, a hand-written energy-pumping swing-up with a
  PD balance at the top, that takes a uniform random action instead with probability
  ``controller_noise`` (Pendulum-v1 only: skipped on any other ``env_id``).

At one state the three give different action modes (SAC's Gaussian, the controller's
bang-bang +-2 or PD torque, a uniform spread), which is what a diffusion behaviour model
has to represent and a Gaussian one cannot.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from _common import Option, continuous_env_id, seed_everything
from easydict import EasyDict
from sac_pendulum import main as train_sac
from tensordict import TensorDict
from torchrl.data import Bounded, LazyMemmapStorage, TensorDictReplayBuffer

from grl_torchrl.data import D4RLExperienceReplay, MinariExperienceReplay, minari_datasets_path
from grl_torchrl.data import reference_scores as dataset_reference_scores
from grl_torchrl.rl_modules import GymEnvSimulator

BEHAVIOURS = ("random", "sac", "controller")

# The dataset's options, shared by iql_offline.py and idql_offline.py: the same values give
# them the same data.
DATASET_OPTIONS = dict(
    dataset=Option(
        "",
        "Minari id or path to a D4RL .hdf5 file ('' = the built-in behaviour data)",
        check=lambda d: (
            "no such .hdf5 file" if d.endswith(".hdf5") and not Path(d).is_file() else None
        ),
    ),
    env_id=Option(
        "Pendulum-v1",
        "gymnasium id of a continuous-action (Box) env: of the built-in data and of a .hdf5 "
        "file (a Minari dataset names its own)",
        check=continuous_env_id,
    ),
    seed=Option(0, "random seed", low=0),
    behaviour_sac_steps=Option(
        3_000, "env steps of the SAC run that gives the partly trained policy", low=1
    ),
    random_episodes=Option(25, "dataset episodes of the uniform random policy", low=1),
    behaviour_episodes=Option(25, "dataset episodes of the partly trained SAC policy", low=1),
    controller_episodes=Option(0, "dataset episodes of the noisy swing-up controller", low=0),
    controller_noise=Option(
        0.5, "probability of a uniform random action in the controller's steps", low=0, high=1
    ),
)

# The IQL critic's training options, the same in iql_offline.py and idql_offline.py.
IQL_CRITIC_OPTIONS = dict(
    train_steps=Option(
        10_000, "gradient steps (0: no training, evaluate the untrained policy)", low=0
    ),
    batch_size=Option(256, "transitions per gradient step", low=1),
    gamma=Option(0.99, "discount factor", low=0, high=1),
    tau=Option(0.005, "Polyak factor of the target critic", low=0, high=1, low_open=True),
    expectile=Option(
        0.7, "expectile of the V regression", low=0, high=1, low_open=True, high_open=True
    ),
)


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
    ``dict(sac=<the SAC run's result>, obs_dim=..., action_spec=...)``. The SAC behaviour
    policy trains on ``env_id``; the swing-up controller runs only on Pendulum-v1.
    """
    # The partly trained behaviour policy: a short SAC run (it seeds everything itself).
    sac = train_sac(
        [
            f"env_id={cfg.env_id}",
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
        if cfg.controller_episodes and cfg.env_id == "Pendulum-v1":
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


def dataset_returns(data: TensorDict) -> dict[str, float]:
    """Mean and best episode return of a dataset with ``"episode"`` ids (any integers).

    >>> data = TensorDict({"episode": torch.tensor([4, 4, 7]),
    ...                    ("next", "reward"): torch.tensor([[1.0], [2.0], [5.0]])}, [3])
    >>> dataset_returns(data)
    {'episode mean': 4.0, 'episode max': 5.0}
    """
    _, episode = torch.unique(data["episode"], return_inverse=True)
    rewards = data["next", "reward"].flatten().double()
    totals = torch.zeros(int(episode.max()) + 1, dtype=torch.float64).index_add_(
        0, episode, rewards
    )
    return {"episode mean": float(totals.mean()), "episode max": float(totals.max())}


def _continuous_spaces(env_id: str) -> tuple[int, object]:
    """The observation size and action spec of a Box-action env (``SystemExit`` otherwise)."""
    with GymEnvSimulator(env_id) as sim:
        obs_spec = sim.env.observation_spec["observation"]
        action_spec = sim.env.action_spec
    if not isinstance(action_spec, Bounded) or len(obs_spec.shape) != 1:
        raise SystemExit(
            f"option env_id={env_id}: expected an env with a continuous (Box) action space and "
            f"flat observations, got actions {type(action_spec).__name__} "
            f"and observations of shape {tuple(obs_spec.shape)}"
        )
    return obs_spec.shape[-1], action_spec


def load_dataset(cfg: EasyDict, out_dir: Path) -> tuple[TensorDictReplayBuffer, dict]:
    """The training data of ``cfg.dataset`` (see the module docstring) and what goes with it.

    Returns the replay buffer and ``dict(env_id=<env to evaluate on>, obs_dim=...,
    action_spec=..., references=<name: return>, ref_scores=(min, max) or None,
    sac=<SAC run result or None>)``. ``references`` are the built-in data's per-behaviour
    mean returns, or a dataset's mean and best episode return.
    """
    if not cfg.dataset:
        buffer, info = build_dataset(cfg, out_dir)
        references = behaviour_returns(buffer[:])
        return buffer, dict(
            info,
            env_id=cfg.env_id,
            references=references,
            ref_scores=dataset_reference_scores(cfg.env_id),
        )
    if cfg.dataset.endswith(".hdf5"):
        buffer = D4RLExperienceReplay(cfg.dataset, cfg.batch_size, env_id=cfg.env_id)
        env_id, ref_scores = cfg.env_id, dataset_reference_scores(Path(cfg.dataset).name)
        ref_scores = ref_scores or dataset_reference_scores(env_id)
    else:
        local = (minari_datasets_path() / cfg.dataset / "data").is_dir()
        buffer = MinariExperienceReplay(
            cfg.dataset,
            cfg.batch_size,
            root=out_dir / "dataset",
            load_from_local_minari=local,
            download=True,
        )
        env_id, ref_scores = buffer.env_id, buffer.ref_scores
    obs_dim, action_spec = _continuous_spaces(env_id)
    return buffer, dict(
        env_id=env_id,
        obs_dim=obs_dim,
        action_spec=action_spec,
        references=dataset_returns(buffer[:]),
        ref_scores=ref_scores,
        sac=None,
    )
