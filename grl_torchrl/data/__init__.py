"""Offline RL data: Minari datasets and D4RL files as TorchRL replay buffers.

``minari`` and ``h5py`` come with the ``grl_torchrl[offline]`` extra; they are imported only
by the functions that need them.
"""

from grl_torchrl.data.checks import check_offline_data
from grl_torchrl.data.d4rl import D4RLExperienceReplay, read_d4rl_hdf5
from grl_torchrl.data.minari import MinariExperienceReplay, minari_datasets_path
from grl_torchrl.data.scores import D4RL_REF_SCORES, normalized_score, reference_scores
from grl_torchrl.data.writer import write_minari_dataset

__all__ = [
    "D4RLExperienceReplay",
    "D4RL_REF_SCORES",
    "MinariExperienceReplay",
    "check_offline_data",
    "minari_datasets_path",
    "normalized_score",
    "read_d4rl_hdf5",
    "reference_scores",
    "write_minari_dataset",
]
