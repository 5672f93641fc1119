"""``IQLLoss`` with the Q ensemble (and its target) evaluated in one batched pass."""

from __future__ import annotations

from torchrl.objectives import iql

from grl_torchrl.objectives.fused import FusedQMixin

__all__ = ["IQLLoss"]


class IQLLoss(FusedQMixin, iql.IQLLoss):
    """TorchRL's :class:`~torchrl.objectives.IQLLoss`, same constructor and outputs, fused.

    Accepts our Q ensembles as ``qvalue_network`` (see :class:`SACLoss`); the value network
    is TorchRL's business (e.g. a :class:`~grl_torchrl.rl_modules.VNetwork`).

    Examples:
        >>> import torch
        >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
        >>> from torchrl.modules import MLP, ProbabilisticActor, TanhNormal
        >>> from grl_torchrl import DoubleQNetwork, VNetwork
        >>> from grl_torchrl.objectives import IQLLoss
        >>> actor = ProbabilisticActor(TensorDictModule(torch.nn.Sequential(
        ...     MLP(in_features=3, out_features=2, num_cells=[16]), NormalParamExtractor()),
        ...     ["observation"], ["loc", "scale"]), ["loc", "scale"], distribution_class=TanhNormal)
        >>> mlp = lambda n: {"backbone": {"type": n[0], "args": {
        ...     "hidden_sizes": [n[1], 16], "output_size": 1, "activation": "relu"}}}
        >>> critic = DoubleQNetwork(mlp(("ConcatenateMLP", 1 + 3)))
        >>> loss = IQLLoss(actor, critic, VNetwork(mlp(("MultiLayerPerceptron", 3))))
        >>> loss.fused, loss.num_qvalue_nets
        (True, 2)
    """

    # IQLLoss._make_vmap (TorchRL 0.14): `_vmap_qvalue_networkN0` (actor, value and Q losses).
    _fused_hooks = (("_vmap_qvalue_networkN0", False),)
