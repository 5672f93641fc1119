"""TorchRL losses that evaluate our Q ensembles in one batched pass (no ``torch.vmap``).

:class:`SACLoss`, :class:`TD3Loss`, :class:`REDQLoss`, :class:`IQLLoss` and :class:`CQLLoss`
are drop-in subclasses of TorchRL's classes of the same name: same constructor, same outputs,
the same values for the same parameters and batch. They also take one of our Q ensembles
itself as ``qvalue_network`` (the loss trains its weights, see
:meth:`~grl_torchrl.rl_modules.EnsembleQNetwork.bind_to_loss`). Critics that are not MLP
:class:`~grl_torchrl.rl_modules.QNetwork` heads run on TorchRL's stock path (``loss.fused`` is False).
:func:`make_update` runs a whole update step of these losses as one compiled graph.
"""

from grl_torchrl.objectives.compiled import UpdateStep, make_update
from grl_torchrl.objectives.cql import CQLLoss
from grl_torchrl.objectives.fused import FusedQEnsemble, FusedQMixin, ParamGroups, fused_q_plan
from grl_torchrl.objectives.iql import IQLLoss
from grl_torchrl.objectives.redq import REDQLoss
from grl_torchrl.objectives.sac import SACLoss
from grl_torchrl.objectives.td3 import TD3Loss

__all__ = [
    "CQLLoss",
    "FusedQEnsemble",
    "FusedQMixin",
    "IQLLoss",
    "ParamGroups",
    "REDQLoss",
    "SACLoss",
    "TD3Loss",
    "UpdateStep",
    "fused_q_plan",
    "make_update",
]
