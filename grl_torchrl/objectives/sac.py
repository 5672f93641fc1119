"""``SACLoss`` with the Q ensemble (and its target) evaluated in one batched pass."""

from __future__ import annotations

from torchrl.objectives import sac

from grl_torchrl.objectives.fused import FusedQMixin

__all__ = ["SACLoss"]


class SACLoss(FusedQMixin, sac.SACLoss):
    """TorchRL's :class:`~torchrl.objectives.SACLoss`, same constructor and outputs, fused.

    ``qvalue_network`` may be a :class:`~grl_torchrl.rl_modules.DoubleQNetwork` /
    :class:`~grl_torchrl.rl_modules.EnsembleQNetwork` itself: the loss then trains the critic's weights
    (``num_qvalue_nets`` defaults to its ``num_heads``). With MLP critics every Q evaluation
    (actor loss, Q prediction, target) runs as one chain of batched matmuls over the loss's
    stacked parameters instead of ``torch.vmap``, giving the stock loss's values.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
        >>> from torchrl.data import Bounded
        >>> from torchrl.modules import MLP, ProbabilisticActor, TanhNormal
        >>> from grl_torchrl import DoubleQNetwork
        >>> from grl_torchrl.objectives import SACLoss
        >>> actor = ProbabilisticActor(TensorDictModule(torch.nn.Sequential(
        ...     MLP(in_features=3, out_features=2, num_cells=[16]), NormalParamExtractor()),
        ...     ["observation"], ["loc", "scale"]), ["loc", "scale"], distribution_class=TanhNormal)
        >>> critic = DoubleQNetwork({"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [1 + 3, 16], "output_size": 1, "activation": "relu"}}})
        >>> loss = SACLoss(actor, qvalue_network=critic, action_spec=Bounded(-1.0, 1.0, (1,)))
        >>> loss.fused, loss.num_qvalue_nets
        (True, 2)
        >>> td = TensorDict({"observation": torch.randn(8, 3), "action": torch.rand(8, 1),
        ...     "next": {"observation": torch.randn(8, 3), "reward": torch.randn(8, 1),
        ...              "done": torch.zeros(8, 1, dtype=torch.bool),
        ...              "terminated": torch.zeros(8, 1, dtype=torch.bool)}}, [8])
        >>> sorted(loss(td).keys())
        ['alpha', 'entropy', 'loss_actor', 'loss_alpha', 'loss_qvalue']
        >>> critic.stacked.backbone.model.model.linear0.weight is loss.qvalue_network_params[
        ...     "model", "backbone", "model", "model", "linear0", "weight"]
        True
    """

    # SACLoss._make_vmap (TorchRL 0.14): `_vmap_qnetworkN0` (actor loss, Q prediction and
    # target, one input shared by the heads); `_vmap_qnetwork00` only with a value_network.
    _fused_hooks = (("_vmap_qnetworkN0", False), ("_vmap_qnetwork00", True))
    _optional_hooks = frozenset({"_vmap_qnetwork00"})
