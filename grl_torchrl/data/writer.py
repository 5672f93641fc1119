"""Writes collected episodes (``GymEnvSimulator`` layout) as a Minari dataset."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

__all__ = ["write_minari_dataset"]

# create_dataset_from_buffers warns for every optional metadata field left out (author,
# e-mail, code link, evaluation env); a locally made dataset has none of them to give.
_METADATA_NAGS = r"`(author|author_email|code_permalink|eval_env|algorithm_name|description)`"


def _episode_ends(data: TensorDictBase) -> list[int]:
    done = data.get(("next", "done")).reshape(-1)
    if not bool(done[-1]):
        raise ValueError(
            "write_minari_dataset: data must hold whole episodes, but its last step is not done "
            "(collect with GymEnvSimulator.collect_episodes, or collect_steps(num_episodes=...))."
        )
    return (done.nonzero().flatten() + 1).tolist()


def write_minari_dataset(
    dataset_id: str,
    data: TensorDictBase,
    env_id: str,
    *,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    algorithm_name: str | None = None,
    description: str | None = None,
    author: str | None = None,
) -> Any:
    """Writes whole episodes as the Minari dataset ``dataset_id`` and returns it.

    ``data`` is a flat TensorDict in TorchRL's layout, as ``GymEnvSimulator`` collects it
    (``"observation"``, ``"action"``, ``("next", "observation" | "reward" | "terminated" |
    "truncated" | "done")``), holding whole episodes one after the other (a step with
    ``("next", "done")`` ends each). Each episode is stored as Minari stores one:
    ``T + 1`` observations (the reset one first), ``T`` actions, rewards, terminations and
    truncations, observations and actions cast to the dtype of ``env_id``'s spaces.

    It goes through ``minari.create_dataset_from_buffers`` with Minari's own
    ``EpisodeBuffer`` records, so no ``minari[create]`` (jax) is needed. The dataset lands
    under ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``); an existing id raises.
    The reference scores, when given, are stored for D4RL-style normalised scores
    (Minari needs ``ref_max_score`` to store either).

    Examples:
        >>> import os, tempfile
        >>> from grl_torchrl.rl_modules import GymEnvSimulator
        >>> os.environ["MINARI_DATASETS_PATH"] = tempfile.mkdtemp()
        >>> with GymEnvSimulator("Pendulum-v1", seed=0) as sim:
        ...     data = sim.collect_episodes(None, num_episodes=2, random_policy=True)
        >>> dataset = write_minari_dataset("pendulum/random-v0", data, "Pendulum-v1")
        >>> dataset.total_episodes, dataset.total_steps
        (2, 400)
        >>> del os.environ["MINARI_DATASETS_PATH"]
    """
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    if not isinstance(data, TensorDictBase) or data.batch_dims != 1 or data.numel() == 0:
        raise ValueError(
            "write_minari_dataset: data must be a non-empty flat TensorDict [N] of whole "
            f"episodes, got {type(data).__name__}"
            + (f" of batch size {tuple(data.batch_size)}" if hasattr(data, "batch_size") else "")
        )
    env = gym.make(env_id)
    obs_dtype, act_dtype = env.observation_space.dtype, env.action_space.dtype
    env.close()

    def array(tensor: torch.Tensor, dtype: Any = None) -> np.ndarray:
        return tensor.detach().cpu().numpy().astype(dtype, copy=False)

    buffers, start = [], 0
    for end in _episode_ends(data):
        episode = data[start:end]
        observations = torch.cat(
            [episode.get("observation"), episode.get(("next", "observation"))[-1:]]
        )
        buffers.append(
            EpisodeBuffer(
                observations=array(observations, obs_dtype),
                actions=array(episode.get("action"), act_dtype),
                rewards=array(episode.get(("next", "reward")).reshape(-1), np.float64),
                terminations=array(episode.get(("next", "terminated")).reshape(-1), bool),
                truncations=array(episode.get(("next", "truncated")).reshape(-1), bool),
            )
        )
        start = end
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_METADATA_NAGS, category=UserWarning)
        return minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=env_id,
            algorithm_name=algorithm_name,
            description=description,
            author=author,
            ref_min_score=ref_min_score,
            ref_max_score=ref_max_score,
        )
