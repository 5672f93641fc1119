"""Value and Q networks and the gym simulator (the ``grl.rl_modules`` API on TorchRL)."""

from grl_torchrl.rl_modules.actors import ProbabilisticActor
from grl_torchrl.rl_modules.collectors import (
    CollectorWorkerError,
    make_collector,
    to_simulator_layout,
)
from grl_torchrl.rl_modules.idql import DiffusionBehaviour, IDQLPolicy
from grl_torchrl.rl_modules.simulator import (
    GymEnvSimulator,
    NumpyPolicyWrapper,
    evaluation_summary,
    to_records,
)
from grl_torchrl.rl_modules.upstream_layout import to_upstream_state_dict
from grl_torchrl.rl_modules.value_networks import (
    DoubleQNetwork,
    DoubleVNetwork,
    EnsembleQNetwork,
    EnsembleVNetwork,
    OneShotValueFunction,
    QNetwork,
    VNetwork,
)

__all__ = [
    "CollectorWorkerError",
    "make_collector",
    "to_simulator_layout",
    "DiffusionBehaviour",
    "DoubleQNetwork",
    "DoubleVNetwork",
    "EnsembleQNetwork",
    "EnsembleVNetwork",
    "GymEnvSimulator",
    "IDQLPolicy",
    "NumpyPolicyWrapper",
    "OneShotValueFunction",
    "ProbabilisticActor",
    "QNetwork",
    "VNetwork",
    "evaluation_summary",
    "to_records",
    "to_upstream_state_dict",
]
