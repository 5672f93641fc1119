"""The whole update step (loss, gradients, Adam, target update) as one compiled graph.

On CPU the eager TorchRL update spends more time in Python plumbing (TensorDict copies,
parameter swaps, distribution objects, the value estimator, ``SoftUpdate``, the optimiser's
bookkeeping) than in its matmuls. :func:`make_update` traces all of it into one graph with
``torch.compile(fullgraph=True)``: the loss's own forward (TorchRL's maths, unchanged), the
gradients by ``torch.autograd.grad``, PyTorch's foreach Adam (written out, see
``_adam_step``) over the optimiser's state tensors, and the target update as one
``torch._foreach_lerp_``; inductor computes its skinny matrix products in their fast layout
(:mod:`grl_torchrl.objectives.matmul_layout`).
``compile=False`` runs the stock eager update instead (``loss.backward()``,
``optimizer.step()``, ``target_updater.step()``), bit for bit.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch._C._dynamo.guards import GlobalStateGuard
from torch._dynamo import eval_frame
from torchrl.objectives import SoftUpdate

from grl_torchrl.objectives.cql import CQLLoss
from grl_torchrl.objectives.iql import IQLLoss
from grl_torchrl.objectives.matmul_layout import SKINNY_MATMUL_LAYOUT
from grl_torchrl.objectives.redq import REDQLoss
from grl_torchrl.objectives.sac import SACLoss
from grl_torchrl.objectives.td3 import TD3Loss

__all__ = ["SUPPORTED_LOSSES", "SUPPORTED_OPTIMIZERS", "UpdateStep", "make_update"]

SUPPORTED_LOSSES = (SACLoss, TD3Loss, REDQLoss, IQLLoss, CQLLoss)
SUPPORTED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)
# the hyperparameters baked into the compiled graph (``lr`` is an input: schedulers work)
_FROZEN_HYPERPARAMETERS = ("betas", "eps", "weight_decay", "amsgrad", "maximize")
_SKIP_GUARDS = eval_frame.DynamoStance("default", skip_guard_eval_unsafe=True)


def make_update(
    loss: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    target_updater: SoftUpdate | None = None,
    *,
    compile: bool = True,  # noqa: A002 - the switch's natural name, as in the examples
    policy_delay: int = 1,
) -> UpdateStep:
    """One gradient step of ``loss`` as a callable ``step(batch) -> losses``.

    ``loss`` is one of ``SUPPORTED_LOSSES`` (ours: :class:`SACLoss`, :class:`TD3Loss`,
    :class:`REDQLoss`, :class:`IQLLoss`, :class:`CQLLoss`), ``optimizer`` a
    ``torch.optim.Adam`` or ``AdamW`` over parameters of ``loss`` (any number of parameter
    groups, ``amsgrad``, ``maximize`` and weight decay included), ``target_updater`` a
    ``SoftUpdate`` of ``loss`` or ``None``. The step sums the ``loss_*`` entries of
    ``loss(batch)``, takes one gradient step and one target update, and returns the losses,
    detached. The priority entry the loss writes (``td_error``) is written into ``batch``.

    ``compile=True``: everything as one ``torch.compile(fullgraph=True)`` graph, compiled at
    the first call (tens of seconds, see docs/api/objectives.rst). The optimiser's state
    tensors stay in ``optimizer.state`` (Adam's layout, so ``state_dict()`` and a later eager
    ``optimizer.step()`` work); ``lr`` is read at every call; changing another
    hyperparameter afterwards raises ``ValueError``. The loss's own Python configuration
    (its hyperparameters, the modules it holds) is part of the graph too: after changing
    it, call ``make_update`` again. Parameters' ``.grad`` are not written.
    Random draws come from the compiled graph's generator (seeded by ``torch.manual_seed``):
    the values match the eager step's within float32 tolerance with
    ``torch._inductor.config.fallback_random = True``.

    ``compile=False``: ``loss(batch)``, ``optimizer.zero_grad(set_to_none=True)``, one
    ``backward()`` of the sum, ``optimizer.step()``, ``target_updater.step()``.

    ``policy_delay`` (:class:`TD3Loss` only): TD3's delayed actor, as TorchRL's
    ``sota-implementations/td3`` script (``policy_update_delay``) and SB3 (``policy_delay``)
    update. Each call steps the critic on ``loss.value_loss(batch)``; every
    ``policy_delay``-th call (the ``policy_delay``-th, the ``2 policy_delay``-th, ...) then
    steps the actor on ``loss.actor_loss(batch)``, computed with the updated critic, and
    updates the targets. The losses returned are ``loss_qvalue`` and ``loss_actor`` (zero
    on the critic-only calls); compiled, those are two graphs.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from torchrl.data import Bounded
        >>> from torchrl.modules import MLP
        >>> from torchrl.objectives import SoftUpdate
        >>> from grl_torchrl import DoubleQNetwork
        >>> from grl_torchrl.objectives import TD3Loss, make_update
        >>> actor = TensorDictModule(MLP(in_features=3, out_features=1, num_cells=[8]),
        ...                          ["observation"], ["action"])
        >>> critic = DoubleQNetwork({"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [1 + 3, 8], "output_size": 1, "activation": "relu"}}})
        >>> loss = TD3Loss(actor, qvalue_network=critic, action_spec=Bounded(-1.0, 1.0, (1,)))
        >>> optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3)
        >>> step = make_update(loss, optimizer, SoftUpdate(loss, tau=0.005), compile=False)
        >>> batch = TensorDict({"observation": torch.randn(8, 3), "action": torch.rand(8, 1),
        ...     "next": {"observation": torch.randn(8, 3), "reward": torch.randn(8, 1),
        ...              "done": torch.zeros(8, 1, dtype=torch.bool),
        ...              "terminated": torch.zeros(8, 1, dtype=torch.bool)}}, [8])
        >>> losses = step(batch)  # one gradient step and one target update
        >>> sorted(key for key in losses.keys() if key.startswith("loss_"))
        ['loss_actor', 'loss_qvalue']
        >>> batch["td_error"].shape  # the priority, as the eager loss writes it
        torch.Size([8])
        >>> make_update(loss, torch.optim.SGD(loss.parameters(), lr=0.1))
        Traceback (most recent call last):
        ...
        TypeError: make_update: optimizer must be torch.optim.Adam or AdamW, got SGD
    """
    return UpdateStep(loss, optimizer, target_updater, compile=compile, policy_delay=policy_delay)


class UpdateStep:
    """What :func:`make_update` returns: ``step(batch) -> losses`` (see there).

    ``compiled`` says which of the two updates it runs, ``policy_delay`` how often the actor
    steps, ``updates`` how many calls it has had.

    >>> import torch
    >>> from torchrl.modules import MLP
    >>> from tensordict.nn import TensorDictModule
    >>> from torchrl.data import Bounded
    >>> from grl_torchrl import DoubleQNetwork
    >>> from grl_torchrl.objectives import TD3Loss, UpdateStep
    >>> loss = TD3Loss(TensorDictModule(MLP(in_features=3, out_features=1, num_cells=[8]),
    ...     ["observation"], ["action"]), qvalue_network=DoubleQNetwork({"backbone": {
    ...     "type": "ConcatenateMLP", "args": {"hidden_sizes": [4, 8], "output_size": 1,
    ...     "activation": "relu"}}}),
    ...     action_spec=Bounded(-1.0, 1.0, (1,)))
    >>> step = UpdateStep(loss, torch.optim.Adam(loss.parameters()), None, compile=False)
    >>> step.compiled
    False
    """

    def __init__(
        self,
        loss: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        target_updater: SoftUpdate | None,
        *,
        compile: bool,  # noqa: A002
        policy_delay: int = 1,
    ) -> None:
        _check_arguments(loss, optimizer, target_updater, compile, policy_delay)
        self.loss, self.optimizer, self.target_updater = loss, optimizer, target_updater
        self.compiled = compile
        self.policy_delay = policy_delay
        self.updates = 0  # calls so far: the actor steps on every policy_delay-th
        self._priority_key = getattr(getattr(loss, "tensor_keys", None), "priority", None)
        if not compile:
            return
        _resolve_lazy_state(loss)
        self._groups = [list(group["params"]) for group in optimizer.param_groups]
        self._hyper = [_frozen(group) for group in optimizer.param_groups]
        # AdamW, or Adam(decoupled_weight_decay=True) (torch >= 2.6 has the flag)
        self._decoupled = [
            isinstance(optimizer, torch.optim.AdamW) or bool(g.get("decoupled_weight_decay"))
            for g in optimizer.param_groups
        ]
        self._targets: list[torch.Tensor] = []
        self._sources: list[torch.Tensor] = []
        self._tau = 0.0
        if target_updater is not None:
            # SoftUpdate's own pairing (private: ``_sources`` / ``_targets``, TorchRL 0.14):
            # only the entries whose target is distinct from its source, as its step() does
            for key, source in target_updater._sources.items(True, True):
                key = key if isinstance(key, tuple) else (key,)
                self._sources.append(source)
                self._targets.append(target_updater._targets.get(("target_" + key[0], *key[1:])))
            self._tau = 1 - target_updater.eps
        self._keys: tuple | None = None
        # per compiled graph: the signature and global state of its last guarded call
        self._warm: dict[str, tuple[tuple, GlobalStateGuard]] = {}
        self._modules = list(loss.modules())
        self._tensors = [*loss.parameters(), *loss.buffers()]
        if policy_delay == 1:
            self._graphs = {"joint": self._own_compiled(type(self)._graph)}
        else:
            self._graphs = {
                "critic": self._own_compiled(type(self)._critic_graph),
                "critic+actor": self._own_compiled(type(self)._critic_actor_graph),
            }

    def _own_compiled(self, graph):
        # dynamo keeps its compiled entries on the function's code object, guarded by `self`:
        # every UpdateStep sharing a graph's code would count as a recompilation of one frame
        # (8 steps in a process reach the recompile limit, and the 9th runs eagerly). A copy
        # of the code object gives this step its own cache entry.
        own_graph = types.FunctionType(
            graph.__code__.replace(), graph.__globals__, graph.__name__, graph.__defaults__
        )
        return torch.compile(
            types.MethodType(own_graph, self),
            fullgraph=True,
            options={"post_grad_custom_post_pass": SKINNY_MATMUL_LAYOUT},
        )

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        if not isinstance(batch, TensorDictBase):
            raise TypeError(f"step: batch must be a TensorDict, got {type(batch).__name__}")
        self.updates += 1
        update_actor = self.updates % self.policy_delay == 0
        if not self.compiled:
            return (
                self._eager(batch)
                if self.policy_delay == 1
                else self._eager_delayed(batch, update_actor)
            )
        if self.policy_delay == 1:
            name = "joint"
        else:
            name = "critic+actor" if update_actor else "critic"
        state = self._optimizer_state()
        # the priority the step writes back is not an input: stepping twice on one batch
        # must not change the graph's inputs (a recompilation)
        keys = tuple(key for key in batch.keys(True, True) if key != self._priority_key)
        values = [batch.get(key) for key in keys]
        signature = self._signature(keys, values, batch.batch_size)
        warm = self._warm.get(name)
        compiled = self._graphs[name]
        if warm is not None and signature == warm[0] and warm[1].check() and _SkipGuards.allowed():
            # What dynamo's guards check is in the signature (tensor layouts, module modes)
            # and the global state (grad mode, thread count, default dtype, ...), so their
            # ~0.4-1.5 ms per call are skipped: see _SkipGuards
            with _SkipGuards():
                losses, priority = compiled(values, batch.batch_size, state)
        else:
            self._keys = keys  # a new batch layout: dynamo's guard on it recompiles
            # trace_autograd_ops lets dynamo trace torch.autograd.grad into the graph; set
            # only around our call so that it changes nothing else the caller compiles
            with torch._dynamo.config.patch(trace_autograd_ops=True):
                losses, priority = compiled(values, batch.batch_size, state)
            # with the global state dynamo's own guard compares (private, C++: ~0.3 us a
            # check); TorchRL's collectors change the thread count between updates, for one
            self._warm[name] = (signature, GlobalStateGuard())
        if priority is not None:
            batch.set(self._priority_key, priority)
        return TensorDict._new_unsafe(losses, torch.Size([]))

    def _signature(self, keys: tuple, values: list[torch.Tensor], batch_size: torch.Size):
        """What the graph was specialised on, beyond the loss's Python configuration."""
        return (
            keys,
            batch_size,
            tuple([(v.shape, v.dtype, v.device, v.stride()) for v in values]),
            tuple([m.training for m in self._modules]),
            tuple([(t.shape, t.dtype, t.device, t.requires_grad) for t in self._tensors]),
        )

    def _eager(self, batch: TensorDictBase) -> TensorDictBase:
        losses = self.loss(batch)
        total = sum(value for key, value in losses.items() if key.startswith("loss_"))
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.target_updater is not None:
            self.target_updater.step()
        return losses.detach()

    def _eager_delayed(self, batch: TensorDictBase, update_actor: bool) -> TensorDictBase:
        # TorchRL's sota-implementations/td3 update: the critic steps on its loss; every
        # policy_delay-th call the actor then steps on its loss (with the updated critic), and
        # the targets move. Parameters without a gradient are left alone by Adam.
        loss_qvalue, metadata = self.loss.value_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss_qvalue.backward()
        self.optimizer.step()
        loss_actor = loss_qvalue.new_zeros(())
        if update_actor:
            loss_actor, _ = self.loss.actor_loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss_actor.backward()
            self.optimizer.step()
            if self.target_updater is not None:
                self.target_updater.step()
        batch.set(self._priority_key, metadata["td_error"].detach().max(0)[0])
        return TensorDict(
            {"loss_actor": loss_actor.detach(), "loss_qvalue": loss_qvalue.detach()}, []
        )

    def _optimizer_state(self) -> list[tuple]:
        """Per group: (exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, coefficients)."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self._groups) or any(
            len(g["params"]) != len(p) for g, p in zip(groups, self._groups, strict=True)
        ):
            raise ValueError(
                "step: the optimizer's parameter groups changed after make_update; call "
                "make_update again"
            )
        out = []
        for group, params, hyper in zip(groups, self._groups, self._hyper, strict=True):
            if _frozen(group) != hyper:
                raise ValueError(
                    f"step: optimizer hyperparameters changed after make_update "
                    f"({dict(zip(_FROZEN_HYPERPARAMETERS, hyper, strict=True))} -> "
                    f"{dict(zip(_FROZEN_HYPERPARAMETERS, _frozen(group), strict=True))}); "
                    f"only lr may "
                    f"change: call make_update again"
                )
            states = [_adam_state(self.optimizer, p, group["amsgrad"]) for p in params]
            steps = [s["step"] for s in states]
            out.append(
                (
                    [s["exp_avg"] for s in states],
                    [s["exp_avg_sq"] for s in states],
                    [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
                    steps,
                    _adam_coefficients(float(group["lr"]), hyper, steps),
                )
            )
        return out

    def _graph(self, values: list[torch.Tensor], batch_size: torch.Size, state: list[tuple]):
        work = self._work_batch(values, batch_size)
        losses = self.loss(work)
        out = {key: value.detach() for key, value in losses.items()}
        total = sum(value for key, value in losses.items() if key.startswith("loss_"))
        self._apply_gradients(total, state, update_targets=True)
        priority = None
        if self._priority_key is not None and self._priority_key in work.keys(True):
            priority = work.get(self._priority_key).detach()
        return out, priority

    def _critic_graph(self, values: list[torch.Tensor], batch_size: torch.Size, state: list):
        return self._delayed_graph(values, batch_size, state, update_actor=False)

    def _critic_actor_graph(self, values: list[torch.Tensor], batch_size: torch.Size, state):
        return self._delayed_graph(values, batch_size, state, update_actor=True)

    def _delayed_graph(self, values, batch_size, state, *, update_actor: bool):
        """``_eager_delayed`` as a graph."""
        work = self._work_batch(values, batch_size)
        loss_qvalue, metadata = self.loss.value_loss(work)
        self._apply_gradients(loss_qvalue, state, update_targets=False)
        loss_actor = loss_qvalue.new_zeros(())
        if update_actor:
            loss_actor, _ = self.loss.actor_loss(work)
            self._apply_gradients(loss_actor, state, update_targets=True)
        out = {"loss_actor": loss_actor.detach(), "loss_qvalue": loss_qvalue.detach()}
        return out, metadata["td_error"].detach().max(0)[0]

    def _work_batch(self, values: list[torch.Tensor], batch_size: torch.Size) -> TensorDict:
        batch = TensorDict(dict(zip(self._keys, values, strict=True)), batch_size)
        # the loss writes into its input (actor outputs, td_error): on a copy, or dynamo
        # refuses to return the caller's TensorDict mutated from inside the graph
        return batch.copy()

    def _apply_gradients(self, total, state: list[tuple], *, update_targets: bool) -> None:
        """Adam on the parameters ``total`` reaches (others keep their state, as Adam leaves
        a parameter without a gradient), then, with ``update_targets``, the target update."""
        params = [p for group in self._groups for p in group]
        # tensors that do not require grad (buffers an optimiser was given) get no gradient,
        # as in eager, where Adam skips them
        trainable = [i for i, p in enumerate(params) if p.requires_grad]
        found = torch.autograd.grad(total, [params[i] for i in trainable], allow_unused=True)
        grads: list[torch.Tensor | None] = [None] * len(params)
        for i, grad in zip(trainable, found, strict=True):
            grads[i] = grad
        with torch.no_grad():
            start = 0
            # never self.optimizer.param_groups here: dynamo would guard on every entry of
            # those dicts, lr included, and recompile when a scheduler changes it
            for params_group, hyper, decoupled, group_state in zip(
                self._groups, self._hyper, self._decoupled, state, strict=True
            ):
                count = len(params_group)
                group_grads = grads[start : start + count]
                start += count
                # which gradients exist is fixed when the graph is traced
                used = [i for i, grad in enumerate(group_grads) if grad is not None]
                if not used:
                    continue
                avgs, sqs, maxs, steps, coefficients = group_state
                _adam_step(
                    [params_group[i] for i in used],
                    [group_grads[i] for i in used],
                    (
                        [avgs[i] for i in used],
                        [sqs[i] for i in used],
                        [maxs[i] for i in used] if maxs else [],
                        [steps[i] for i in used],
                        coefficients[used],
                    ),
                    hyper,
                    decoupled,
                )
            if update_targets and self._targets:
                torch._foreach_lerp_(self._targets, self._sources, self._tau)


def _adam_coefficients(lr: float, hyper: tuple, steps: list[torch.Tensor]) -> torch.Tensor:
    """Per parameter: ``-lr / (1 - beta1**t)``, ``sqrt(1 - beta2**t)``, ``1 - lr * weight_decay``.

    ``t`` is the coming step (the parameter's step count + 1); Python floats, as the eager
    (non-capturable) Adam computes them. A ``[len(steps), 3]`` float32 tensor.
    """
    (beta1, beta2), _, weight_decay, _, _ = hyper
    counts = torch.stack(steps).tolist()
    rows = {}  # by step count: a group's parameters share it, as a rule
    for count in counts:
        if count not in rows:
            t = count + 1
            rows[count] = (-lr / (1 - beta1**t), (1 - beta2**t) ** 0.5, 1 - lr * weight_decay)
    return torch.tensor([rows[count] for count in counts])


def _adam_step(params, grads, state, hyper, decoupled: bool) -> None:
    """PyTorch's foreach Adam (``torch.optim.adam._multi_tensor_adam``), traced in the graph.

    Written out rather than calling ``torch.optim.adam.adam(capturable=True)``: its bias
    corrections are tensor maths on the step count, which inductor inlines into each
    parameter's elementwise loop, where the C++ compiler cannot hoist them (a ``pow`` per
    8 floats: Adam's fused kernel took 1.9 ms of the SAC step under inductor's kernel
    profiler, 0.7 ms written out). Here they come precomputed, one row
    per parameter (see ``_adam_coefficients``); the update is otherwise Adam's.
    """
    avgs, sqs, maxs, steps, coefficients = state
    (beta1, beta2), eps, weight_decay, amsgrad, maximize = hyper
    grads = list(grads)
    if maximize:
        grads = torch._foreach_neg(grads)
    torch._foreach_add_(steps, 1)
    if weight_decay != 0:
        if decoupled:
            for index, param in enumerate(params):
                param.mul_(coefficients[index, 2])
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(avgs, grads, 1 - beta1)
    torch._foreach_mul_(sqs, beta2)
    torch._foreach_addcmul_(sqs, grads, grads, 1 - beta2)
    if amsgrad:
        torch._foreach_maximum_(maxs, sqs)
    second_moments = maxs if amsgrad else sqs
    for index, (param, avg, sq) in enumerate(zip(params, avgs, second_moments, strict=True)):
        denominator = sq.sqrt() / coefficients[index, 1] + eps
        param.add_(avg / denominator * coefficients[index, 0])


class _SkipGuards:
    """Dynamo's "run only the guards that tell cache entries apart" stance, set cheaply.

    ``torch.compiler.set_stance("default", skip_guard_eval_unsafe=True)`` costs ~250 us to
    build per call (measured), a good part of the 0.4-1.5 ms it saves; this sets the same
    stance through the function it calls (``torch._dynamo.eval_frame._set_stance``,
    private). :class:`UpdateStep` enters it only when its own checks (the signature) show
    that the call matches the one that last ran with guards; the loss's Python
    configuration (hyperparameters, modules) is documented as fixed after
    :func:`make_update`, as the optimiser's is.
    """

    __slots__ = ("prior",)

    @staticmethod
    def allowed() -> bool:
        """Not under a stance the caller set (``force_eager``, another backend, ...)."""
        stance = eval_frame._stance
        return stance.stance == "default" and stance.backend is None

    def __enter__(self) -> None:
        self.prior = eval_frame._set_stance(_SKIP_GUARDS)

    def __exit__(self, *exc) -> None:
        eval_frame._set_stance(self.prior)


def _frozen(group: dict[str, Any]) -> tuple:
    return tuple(tuple(group[k]) if k == "betas" else group[k] for k in _FROZEN_HYPERPARAMETERS)


def _adam_state(optimizer: torch.optim.Optimizer, param: torch.Tensor, amsgrad: bool) -> dict:
    """``optimizer.state[param]``, created as ``torch.optim.Adam`` creates it if empty."""
    state = optimizer.state[param]
    if not state:
        # Adam._init_group's layout (step a float32 0-d tensor, moments like the parameter);
        # the step lives on the parameter's device, as Adam keeps it with fused/capturable
        state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def _resolve_lazy_state(loss: torch.nn.Module) -> None:
    # TorchRL's losses build some state at their first forward (the default value
    # estimator, SAC's target entropy from the action spec, TD3's in_keys); built inside the
    # graph, that state would break it or fail a guard at the second call (a recompilation),
    # so it is built now, as the first eager call would
    loss.in_keys  # noqa: B018 - the property sets _in_keys
    if getattr(loss, "_value_estimator", True) is None:
        loss.value_estimator  # noqa: B018 - the property builds the default estimator
    if hasattr(type(loss), "target_entropy"):
        loss.target_entropy  # noqa: B018 - the property computes and caches it


def _check_arguments(loss, optimizer, target_updater, compile, policy_delay) -> None:  # noqa: A002
    if not isinstance(loss, SUPPORTED_LOSSES):
        names = ", ".join(f"grl_torchrl.objectives.{c.__name__}" for c in SUPPORTED_LOSSES)
        raise TypeError(f"make_update: loss must be one of {names}, got {type(loss).__name__}")
    if type(optimizer) not in SUPPORTED_OPTIMIZERS:
        raise TypeError(
            f"make_update: optimizer must be torch.optim.Adam or AdamW, got "
            f"{type(optimizer).__name__}"
        )
    if not isinstance(compile, bool):
        raise TypeError(f"make_update: compile must be a bool, got {compile!r}")
    if isinstance(policy_delay, bool) or not isinstance(policy_delay, int) or policy_delay < 1:
        raise ValueError(f"make_update: policy_delay must be an int >= 1, got {policy_delay!r}")
    if policy_delay > 1 and not isinstance(loss, TD3Loss):
        raise ValueError(
            f"make_update: policy_delay={policy_delay} delays TD3's actor update; "
            f"{type(loss).__name__} has no delayed actor (use policy_delay=1)"
        )
    # buffers too: TorchRL's TD3 script builds its Adams from `actor_network_params`, which
    # holds the actor's buffers (TanhModule's bounds); Adam never steps them (no gradient)
    owned = {id(t) for t in (*loss.parameters(), *loss.buffers())}
    for index, group in enumerate(optimizer.param_groups):
        for param in group["params"]:
            if id(param) not in owned:
                raise ValueError(
                    f"make_update: optimizer param_groups[{index}] holds a tensor of shape "
                    f"{tuple(param.shape)} that is not a parameter or buffer of the loss; give "
                    f"an optimizer over (a subset of) loss.parameters()"
                )
        if compile and group.get("differentiable"):
            raise ValueError(
                f"make_update: optimizer param_groups[{index}] has differentiable=True; the "
                f"compiled step supports differentiable=False only"
            )
        if compile and isinstance(group["lr"], torch.Tensor) and group["lr"].numel() != 1:
            raise ValueError("make_update: a tensor lr must have one element")
    if target_updater is not None:
        if type(target_updater) is not SoftUpdate:
            raise TypeError(
                f"make_update: target_updater must be torchrl.objectives.SoftUpdate or None, "
                f"got {type(target_updater).__name__}"
            )
        if target_updater.loss_module is not loss:
            raise ValueError("make_update: target_updater updates another loss than `loss`")
