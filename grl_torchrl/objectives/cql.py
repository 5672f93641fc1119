"""``CQLLoss`` with the Q ensemble (and its target) evaluated in one batched pass."""

from __future__ import annotations

from torchrl.objectives import cql

from grl_torchrl.objectives.fused import FusedQMixin

__all__ = ["CQLLoss"]


class CQLLoss(FusedQMixin, cql.CQLLoss):
    """TorchRL's :class:`~torchrl.objectives.CQLLoss`, same constructor and outputs, fused.

    Accepts our Q ensembles as ``qvalue_network`` (see :class:`SACLoss`). CQL's loss reads
    exactly two heads (``pred_q1``, ``pred_q2``): give it a :class:`~grl_torchrl.rl_modules.DoubleQNetwork`.

    Examples:
        >>> import torch
        >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
        >>> from torchrl.data import Bounded
        >>> from torchrl.modules import MLP, ProbabilisticActor, TanhNormal
        >>> from grl_torchrl import DoubleQNetwork
        >>> from grl_torchrl.objectives import CQLLoss
        >>> actor = ProbabilisticActor(TensorDictModule(torch.nn.Sequential(
        ...     MLP(in_features=3, out_features=2, num_cells=[16]), NormalParamExtractor()),
        ...     ["observation"], ["loc", "scale"]), ["loc", "scale"], distribution_class=TanhNormal)
        >>> critic = DoubleQNetwork({"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [1 + 3, 16], "output_size": 1, "activation": "relu"}}})
        >>> loss = CQLLoss(actor, qvalue_network=critic, action_spec=Bounded(-1.0, 1.0, (1,)))
        >>> loss.fused, type(loss._vmap_qvalue_network00).__name__
        (True, 'FusedQEnsemble')
    """

    # CQLLoss._make_vmap (TorchRL 0.14): `_vmap_qvalue_networkN0` (actor loss, Q prediction,
    # target) and `_vmap_qvalue_network00` (the CQL penalty's random / policy actions).
    _fused_hooks = (("_vmap_qvalue_networkN0", False), ("_vmap_qvalue_network00", True))
    _fixed_num_qvalue_nets = 2  # CQLLoss takes no num_qvalue_nets: two heads, always
