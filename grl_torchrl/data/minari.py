"""TorchRL's ``MinariExperienceReplay`` with its data actually loaded."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tensordict import TensorDict, TensorDictBase
from torchrl.data.datasets import MinariExperienceReplay as _TorchRLMinariExperienceReplay

from grl_torchrl.data.checks import cast_float64, check_offline_data
from grl_torchrl.data.scores import reference_scores

__all__ = ["MinariExperienceReplay", "minari_datasets_path"]

_RAW_METADATA = "minari_metadata.json"


def minari_datasets_path() -> Path:
    """Where Minari keeps local datasets: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``."""
    path = os.environ.get("MINARI_DATASETS_PATH")
    return Path(path) if path else Path("~/.minari/datasets").expanduser()


@contextlib.contextmanager
def _memmap_like_keeps_data() -> Iterator[None]:
    # TorchRL 0.14.1 bug (still on pytorch/rl main): MinariExperienceReplay._download_and_preproc
    # fills an in-memory TensorDict with every episode, then replaces it by
    # `td_data.memmap_like(self.data_path_root)`, an EMPTY memory-mapped copy, so every
    # observation, action, reward and flag comes back zero. What it meant is `memmap`
    # (same files, contents written). For the duration of that one call, `memmap_like` on a
    # TensorDict writes the contents; the rest of TorchRL's method runs unchanged.
    # Process-global while it lasts: do not build two of these datasets from two threads.
    previous = TensorDict.__dict__.get("memmap_like")

    def memmap_with_contents(self: TensorDict, prefix: Any = None, *args: Any, **kwargs: Any):
        kwargs.pop("existsok", None)
        kwargs.pop("robust_key", None)
        return self.memmap(prefix, *args, existsok=True, **kwargs)

    TensorDict.memmap_like = memmap_with_contents
    try:
        yield
    finally:
        if previous is None:
            del TensorDict.memmap_like
        else:
            TensorDict.memmap_like = previous


class MinariExperienceReplay(_TorchRLMinariExperienceReplay):
    """:class:`torchrl.data.datasets.MinariExperienceReplay` whose data are the dataset's.

    Same constructor, arguments and outputs as TorchRL's class (TED layout:
    ``"observation"``, ``"action"``, ``"episode"``, ``("next", "observation" | "reward" |
    "terminated" | "truncated" | "done")``), with TorchRL 0.14.1's all-zeros bug fixed
    (see ``_memmap_like_keeps_data``), plus:

    - float64 observations, rewards (and any other float64 entry) come out float32, the
      dtype torch networks take; ``keep_float64=True`` keeps them float64. ``metadata``
      still describes the spaces as stored.
    - ``done = terminated | truncated`` as TorchRL defines it; ``"episode"`` is Minari's
      episode id.
    - the data are checked (:func:`~grl_torchrl.data.check_offline_data`): all-zero
      observations, actions or rewards, or shapes that disagree with the spaces, raise
      ``ValueError`` naming the dataset and the key.
    - :attr:`env_id` (the evaluation env Minari recorded, else the collection env) and
      :attr:`ref_scores` (Minari's ``ref_min_score`` / ``ref_max_score``, else D4RL's
      constants for hopper / halfcheetah / walker2d, else ``None``).

    Not fixed here: TorchRL 0.14.1 also fails (``TypeError`` from ``max(*episodes)`` in a
    log line) on a dataset of a single episode.

    A dataset made on this machine (e.g. by :func:`~grl_torchrl.data.write_minari_dataset`)
    is read with ``load_from_local_minari=True`` from ``$MINARI_DATASETS_PATH``; ``root``
    is where TorchRL keeps its memory-mapped copy (default ``~/.cache/torchrl/minari``).

    Examples:
        >>> import os, tempfile
        >>> from grl_torchrl.data import write_minari_dataset
        >>> from grl_torchrl.rl_modules import GymEnvSimulator
        >>> os.environ["MINARI_DATASETS_PATH"] = tempfile.mkdtemp()
        >>> with GymEnvSimulator("Pendulum-v1", seed=0) as sim:
        ...     _ = write_minari_dataset(
        ...         "pendulum/doc-v0", sim.collect_episodes(None, num_episodes=2, random_policy=True),
        ...         "Pendulum-v1")
        >>> data = MinariExperienceReplay("pendulum/doc-v0", batch_size=8, root=tempfile.mkdtemp(),
        ...                               load_from_local_minari=True)
        >>> len(data), data[:]["observation"].dtype, data.env_id
        (400, torch.float32, 'Pendulum-v1')
        >>> del os.environ["MINARI_DATASETS_PATH"]
    """

    def __init__(self, dataset_id: str, batch_size: int, *, keep_float64: bool = False, **kwargs):
        if not isinstance(keep_float64, bool):
            raise TypeError(f"keep_float64 must be a bool, got {keep_float64!r}")
        self.keep_float64 = keep_float64
        super().__init__(dataset_id, batch_size, **kwargs)
        check_offline_data(
            self._storage._storage,
            dataset_id,
            observation_shape=self.metadata["observation_space"].shape,
            action_shape=self.metadata["action_space"].shape,
        )

    def _download_and_preproc(self) -> TensorDictBase:
        if self.load_from_local_minari:
            # TorchRL keeps only Minari's dataset spec; the reference scores and the
            # evaluation env live in Minari's own metadata, saved beside TorchRL's copy.
            source = minari_datasets_path() / self.dataset_id / "data" / "metadata.json"
            if source.exists():
                self.data_path_root.mkdir(parents=True, exist_ok=True)
                (self.data_path_root / _RAW_METADATA).write_text(source.read_text())
        with _memmap_like_keeps_data():
            return cast_float64(super()._download_and_preproc(), self.keep_float64)

    def _load(self) -> TensorDictBase:
        return cast_float64(super()._load(), self.keep_float64)

    def _make_split(self) -> TensorDictBase:
        return cast_float64(super()._make_split(), self.keep_float64)

    @property
    def minari_metadata(self) -> dict:
        """Minari's own ``metadata.json`` of a locally loaded dataset, else ``{}``."""
        path = self.data_path_root / _RAW_METADATA
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def env_id(self) -> str:
        """The gymnasium id to evaluate on, Minari's evaluation env or else the collection env."""
        eval_spec = self.minari_metadata.get("eval_env_spec")
        if eval_spec:
            return json.loads(eval_spec)["id"]
        env_spec = self.metadata.get("env_spec")
        if not env_spec:
            raise ValueError(f"Minari dataset {self.dataset_id!r} records no environment")
        return env_spec["id"]

    @property
    def ref_scores(self) -> tuple[float, float] | None:
        """The reference returns ``(ref_min, ref_max)`` of normalised scores, or ``None``."""
        return reference_scores(self.dataset_id, self.minari_metadata)
