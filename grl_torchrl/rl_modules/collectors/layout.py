"""Collector batches in ``GymEnvSimulator``'s flat layout."""

from __future__ import annotations

from tensordict import TensorDictBase

__all__ = ["to_simulator_layout"]


def to_simulator_layout(batch: TensorDictBase) -> TensorDictBase:
    """Turns a synchronous collector batch into ``GymEnvSimulator``'s flat env-major ``[N]``.

    ``batch`` is what a ``make_collector(..., sync=True)`` collector yields: ``[workers,
    envs, T]`` (``[workers, T]`` with one env per worker). Env ``i`` of worker ``w`` becomes
    env ``w * envs + i`` and its ``T`` steps stay contiguous, as in
    ``GymEnvSimulator(num_envs=workers * envs).collect_steps``, so every episode piece is
    contiguous and ``TensorDictReplayBuffer.extend`` takes the result as is.

    ``("collector", "traj_ids")`` become unique across workers: TorchRL numbers each Ray
    worker's trajectories from 0, so worker ``w``'s id ``k`` becomes ``k * workers + w``
    (the process backend's ids, already unique, stay unique). They tell trajectories
    apart; they are not numbered like the simulator's.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> batch = TensorDict(
        ...     {"step": torch.arange(8).view(2, 2, 2),
        ...      ("collector", "traj_ids"): torch.tensor([[[0, 0], [1, 1]], [[0, 0], [1, 2]]])},
        ...     batch_size=[2, 2, 2])
        >>> flat = to_simulator_layout(batch)
        >>> flat["step"].tolist(), flat["collector", "traj_ids"].tolist()
        ([0, 1, 2, 3, 4, 5, 6, 7], [0, 0, 2, 2, 1, 1, 3, 5])
    """
    if not isinstance(batch, TensorDictBase):
        raise TypeError(f"batch must be a TensorDict, got {type(batch).__name__}.")
    if batch.batch_dims not in (2, 3):
        raise ValueError(
            "batch must be a synchronous collector batch [workers, envs, T] or [workers, T], "
            f"got batch_size {tuple(batch.batch_size)}."
        )
    num_workers = batch.batch_size[0]
    flat = batch.reshape(-1)
    ids = batch.get(("collector", "traj_ids"), None)
    if ids is not None:
        worker = ids.new_tensor(range(num_workers)).view(-1, *(1,) * (ids.ndim - 1))
        flat.set(("collector", "traj_ids"), (ids * num_workers + worker).reshape(-1))
    return flat
