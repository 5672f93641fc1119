"""The gym simulator: ``GymEnvSimulator`` over TorchRL's ``GymWrapper`` and ``Collector``.

``gym_simulator`` holds the user-facing class, ``env`` the lean ``GymWrapper`` hooks,
``runner`` the env factory and the collector loop, ``policies`` the policy adapters and
``render`` the ``evaluate(render_args=...)`` helpers.
"""

from grl_torchrl.rl_modules.simulator.gym_simulator import (
    EVAL_SEED_OFFSET,
    GymEnvSimulator,
    NumpyPolicyWrapper,
    evaluation_summary,
    to_records,
)
from grl_torchrl.rl_modules.simulator.runner import make_gym_env

__all__ = [
    "EVAL_SEED_OFFSET",
    "GymEnvSimulator",
    "NumpyPolicyWrapper",
    "evaluation_summary",
    "make_gym_env",
    "to_records",
]
