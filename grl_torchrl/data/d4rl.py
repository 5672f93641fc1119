"""A local D4RL ``.hdf5`` file as a TorchRL replay buffer, in the layout Minari's loader gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict
from torchrl.data import TensorDictReplayBuffer, TensorStorage
from torchrl.data.replay_buffers.writers import ImmutableDatasetWriter

from grl_torchrl.data.checks import cast_float64, check_offline_data

__all__ = ["D4RLExperienceReplay", "read_d4rl_hdf5"]

_REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as file:
        missing = [key for key in _REQUIRED if key not in file]
        if missing:
            raise ValueError(
                f"D4RL file {str(path)!r} has no {missing} (D4RL keys: {list(_REQUIRED)} and "
                f"optionally 'next_observations'; found {sorted(file.keys())})"
            )
        keys = [*_REQUIRED, *(["next_observations"] if "next_observations" in file else [])]
        arrays = {key: np.asarray(file[key][()]) for key in keys}
    n = len(arrays["observations"])
    for key, value in arrays.items():
        if key in ("rewards", "terminals", "timeouts") and value.shape == (n, 1):
            arrays[key] = value = value[:, 0]  # some D4RL files store these as [N, 1]
        expected = 2 if key in ("observations", "actions", "next_observations") else 1
        if value.ndim != expected or len(value) != n:
            raise ValueError(
                f"D4RL file {str(path)!r}: {key!r} has shape {value.shape}, expected "
                f"{'[N, dim]' if expected == 2 else '[N]'} with N = {n} (the observations' length)"
            )
    return arrays


def read_d4rl_hdf5(path: str | Path, *, keep_float64: bool = False) -> TensorDict:
    """The transitions of a D4RL file as a flat ``TensorDict`` in TorchRL's layout.

    Keys: ``"observation"``, ``"action"``, ``"episode"``, ``("next", "observation" |
    "reward" | "terminated" | "truncated" | "done")`` (flags and reward ``[N, 1]``), as
    :class:`~grl_torchrl.data.MinariExperienceReplay` gives them. D4RL's episode-end rules:

    - ``terminals`` are terminations; ``timeouts`` are truncations, never terminations
      (the value of the next state still counts). ``done = terminated | truncated``.
    - Episodes end at a terminal or a timeout; ``"episode"`` numbers them from 0.
    - With ``next_observations`` in the file every row is kept and its next observation is
      read from there; a last row that is neither terminal nor timeout is truncated.
    - Without it, the next observation is the following row's observation. A timeout row's
      following row is already the next episode's reset, so its true next observation is
      unknown: the row is dropped, as ``d4rl.qlearning_dataset`` and IQL drop it, and the
      step before it (now its episode's last) is marked truncated. The file's last row is
      dropped for the same reason. A terminal row keeps the following row's observation as
      its next one, as D4RL does: ``(1 - terminated)`` masks it out of every TD target.

    float64 entries come out float32 unless ``keep_float64``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"D4RL file {str(path)!r} does not exist")
    arrays = _read_arrays(path)
    terminals = torch.as_tensor(arrays["terminals"]).bool()
    timeouts = torch.as_tensor(arrays["timeouts"]).bool()
    ends = terminals | timeouts
    episode = ends.long().cumsum(0) - ends.long()
    observations = torch.as_tensor(arrays["observations"])
    n = len(observations)
    if "next_observations" in arrays:
        keep = torch.ones(n, dtype=torch.bool)
        next_observations = torch.as_tensor(arrays["next_observations"])
        truncated = timeouts & ~terminals
        truncated[-1] |= not bool(terminals[-1])
    else:
        keep = ~timeouts | terminals
        keep[-1] = False
        next_observations = torch.cat([observations[1:], observations[-1:]])
        # the step before a dropped row of its own episode is now that episode's last
        no = torch.zeros(1, dtype=torch.bool)
        before_dropped = torch.cat([~keep[1:], no])
        same_episode = torch.cat([episode[1:] == episode[:-1], no])
        truncated = before_dropped & same_episode & keep & ~terminals
    terminated = terminals & keep
    data = TensorDict(
        {
            "observation": observations,
            "action": torch.as_tensor(arrays["actions"]),
            "episode": episode,
            ("next", "observation"): next_observations,
            ("next", "reward"): torch.as_tensor(arrays["rewards"]).unsqueeze(-1),
            ("next", "terminated"): terminated.unsqueeze(-1),
            ("next", "truncated"): truncated.unsqueeze(-1),
            ("next", "done"): (terminated | truncated).unsqueeze(-1),
        },
        batch_size=[n],
    )[keep]
    return cast_float64(data, keep_float64)


class D4RLExperienceReplay(TensorDictReplayBuffer):
    """A local D4RL ``.hdf5`` file as an immutable TorchRL replay buffer.

    The data are :func:`read_d4rl_hdf5`'s (D4RL's episode-end rules are listed there),
    held in a ``TensorStorage`` with TorchRL's ``ImmutableDatasetWriter``, as TorchRL's
    dataset classes hold theirs, and checked by
    :func:`~grl_torchrl.data.check_offline_data` (against ``env_id``'s spaces when
    given). Nothing is downloaded: the file is the one ``d4rl`` wrote.

    Args:
        path: the ``.hdf5`` file.
        batch_size: the default ``sample()`` size.

    Keyword Args:
        env_id (str, optional): the gymnasium env the data come from; its observation and
            action shapes must match the file's.
        keep_float64 (bool): keep float64 entries float64. Defaults to ``False`` (float32).
        **kwargs: forwarded to ``TensorDictReplayBuffer`` (``sampler``, ``transform``, ...).

    Examples:
        >>> import tempfile, h5py, numpy as np
        >>> path = tempfile.mkdtemp() + "/pendulum.hdf5"
        >>> with h5py.File(path, "w") as f:  # two episodes of 3 steps, the second timed out
        ...     f["observations"] = np.random.randn(6, 3)
        ...     f["actions"] = np.random.uniform(-2, 2, (6, 1)).astype(np.float32)
        ...     f["rewards"] = -np.random.rand(6)
        ...     f["terminals"] = np.array([0, 0, 1, 0, 0, 0], bool)
        ...     f["timeouts"] = np.array([0, 0, 0, 0, 0, 1], bool)
        >>> data = D4RLExperienceReplay(path, batch_size=4, env_id="Pendulum-v1")
        >>> len(data), data.sample()["observation"].dtype  # the timeout row has no next obs
        (5, torch.float32)
        >>> data[:]["next", "truncated"].flatten().tolist()
        [False, False, False, False, True]
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int | None = None,
        *,
        env_id: str | None = None,
        keep_float64: bool = False,
        **kwargs,
    ) -> None:
        data = read_d4rl_hdf5(path, keep_float64=keep_float64)
        shapes = {}
        if env_id is not None:
            import gymnasium as gym

            env = gym.make(env_id)
            shapes = dict(
                observation_shape=env.observation_space.shape, action_shape=env.action_space.shape
            )
            env.close()
        check_offline_data(data, str(path), **shapes)
        self.path = Path(path)
        self.env_id = env_id
        super().__init__(
            storage=TensorStorage(data),
            writer=ImmutableDatasetWriter(),
            batch_size=batch_size,
            **kwargs,
        )
