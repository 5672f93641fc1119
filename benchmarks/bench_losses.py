"""Per-update time of SAC (and REDQ, TD3, IQL, CQL) updates: fused losses, stock TorchRL, SB3.

One *update* is what a training loop does per gradient step: sample a batch of 256 from a
replay buffer of 10k Pendulum-shaped transitions (obs 3, action 1), compute the loss, one
backward, the optimiser step(s), the target update. Networks as in
``examples/sac_pendulum.py``: actor and critic with two hidden layers of 256, ReLU.

Variants (``--groups``; ``--compile`` adds the compiled rows, ``--sbx`` the SBX ones):

* ``sac``: ``grl_torchrl.objectives.SACLoss`` with a ``DoubleQNetwork`` (fused), with
  TorchRL's ``ProbabilisticActor`` and with grl_torchrl's (direct ``get_dist``, as in
  ``examples/sac_pendulum.py``); stock
  ``torchrl.objectives.SACLoss`` with TorchRL's ``ValueOperator(MLP)`` critic; stock
  ``SACLoss`` with ``DoubleQNetwork.heads``; Stable-Baselines3's ``SAC.train()`` (its own
  buffer, three Adams); a plain-PyTorch, CleanRL-style update (two ``nn.Sequential`` Q
  networks, three Adams).
  With ``--compile``: our update through ``grl_torchrl.objectives.make_update`` (the whole
  step as one ``torch.compile(fullgraph=True)`` graph) and the plain-PyTorch update as one
  graph. With ``--sbx``: SBX's ``SAC.train()`` (JAX), see below.
* ``td3``: ``TD3Loss`` fused (eager; compiled with ``--compile``), stock TorchRL with
  ``ValueOperator(MLP)``, against SB3's ``TD3.train()`` (and SBX's with ``--sbx``). SB3/SBX
  update the actor and the targets every second step (``policy_delay=2``); TorchRL's
  ``TD3Loss`` computes the actor loss at every step, as SB3's row with ``policy_delay=1`` does,
  and ``make_update(..., policy_delay=2)`` (a ``--compile`` row) every second step, as SB3.
* ``redq``: the same three TorchRL variants for ``REDQLoss`` with 10 heads (compiled with
  ``--compile``), against stock REDQ with ``ValueOperator(MLP)``.
* ``others``: the same three for ``IQLLoss`` (value network: TorchRL's ``ValueOperator(MLP)``
  in every variant, so only the Q critic differs) and ``CQLLoss``.

The variants run interleaved, ``--updates`` updates each per round, in one process with one
torch thread; the table gives the medians over rounds of the wall and process-CPU time per
update, and the median over rounds of each variant's CPU-time ratio to its reference in the
same round (on a machine shared with other jobs, CPU time and same-round ratios are far
steadier than wall times). Compiled variants are compiled before the rounds; their
compile times are printed (cold: run with an empty inductor cache,
``TORCHINDUCTOR_CACHE_DIR=$(mktemp -d)``; warm: run again with the same cache).

SBX (``sbx-rl``) needs JAX, kept out of the project's venv: make a second venv that sees the
project's packages and add SBX to it, then pass its Python::

    python3.11 -m venv .venv-sbx
    echo "$PWD/.venv/lib/python3.11/site-packages" > .venv-sbx/lib/python3.11/site-packages/main.pth
    .venv-sbx/bin/python -m pip install sbx-rl      # JAX, Flax, Optax; torch/SB3 come from .venv

SBX then runs in its own process (``benchmarks/sbx_worker.py``), driven round by round like
the other variants; its CPU time is that process's. Pin everything to one core so that SBX's
XLA threads cannot use a second one: ``taskset -c 1 python benchmarks/bench_losses.py ...``.

Usage: ``python benchmarks/bench_losses.py [--rounds 15] [--updates 10] [--groups sac,td3,redq]
[--compile] [--sbx .venv-sbx/bin/python]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded, LazyTensorStorage, TensorDictReplayBuffer
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import CQLLoss, IQLLoss, REDQLoss, SACLoss, SoftUpdate, TD3Loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from _common import skip_pandas_probe  # noqa: E402

from grl_torchrl import DoubleQNetwork, EnsembleQNetwork, objectives  # noqa: E402
from grl_torchrl.allocator import keep_freed_memory  # noqa: E402
from grl_torchrl.objectives import make_update  # noqa: E402
from grl_torchrl.rl_modules import ProbabilisticActor as GrlProbabilisticActor  # noqa: E402

OBS, ACT, HIDDEN, BUFFER = 3, 1, 256, 10_000
SPEC = Bounded(-2.0, 2.0, shape=(ACT,))
STOCK = {"sac": SACLoss, "redq": REDQLoss, "td3": TD3Loss, "iql": IQLLoss, "cql": CQLLoss}
FUSED = {
    "sac": objectives.SACLoss,
    "redq": objectives.REDQLoss,
    "td3": objectives.TD3Loss,
    "iql": objectives.IQLLoss,
    "cql": objectives.CQLLoss,
}


def random_transitions(n: int, seed: int = 0) -> TensorDict:
    gen = torch.Generator().manual_seed(seed)
    done = torch.rand(n, 1, generator=gen) < 0.005
    return TensorDict(
        {
            "observation": torch.randn(n, OBS, generator=gen),
            "action": torch.rand(n, ACT, generator=gen) * 4 - 2,
            "next": {
                "observation": torch.randn(n, OBS, generator=gen),
                "reward": -torch.rand(n, 1, generator=gen) * 10,
                "done": done,
                "terminated": done.clone(),
                "truncated": torch.zeros_like(done),
            },
        },
        [n],
    )


def q_config() -> dict:
    return {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {
                "hidden_sizes": [ACT + OBS, HIDDEN, HIDDEN],
                "output_size": 1,
                "activation": "relu",
            },
        }
    }


def stochastic_actor(actor_cls: type = ProbabilisticActor) -> ProbabilisticActor:
    net = nn.Sequential(
        MLP(OBS, 2 * ACT, num_cells=[HIDDEN] * 2, activation_class=nn.ReLU),
        NormalParamExtractor(),
    )
    return actor_cls(
        TensorDictModule(net, ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=SPEC,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": -2.0, "high": 2.0},
        return_log_prob=True,
    )


def deterministic_actor() -> TensorDictModule:
    net = nn.Sequential(MLP(OBS, ACT, num_cells=[HIDDEN] * 2, activation_class=nn.ReLU), nn.Tanh())
    return TensorDictModule(net, ["observation"], ["action"])


def value_operator_q() -> ValueOperator:
    return ValueOperator(
        MLP(OBS + ACT, 1, num_cells=[HIDDEN] * 2, activation_class=nn.ReLU),
        in_keys=["observation", "action"],
    )


def value_operator_v() -> ValueOperator:
    return ValueOperator(
        MLP(OBS, 1, num_cells=[HIDDEN] * 2, activation_class=nn.ReLU), in_keys=["observation"]
    )


def torchrl_update(
    algo: str,
    critic_kind: str,
    batch_size: int,
    heads: int = 2,
    actor_cls: type = ProbabilisticActor,
    compiled: bool = False,
    policy_delay: int = 1,
) -> Callable:
    """One TorchRL update closure: ``critic_kind`` in ``fused``, ``value_operator``, ``heads``.

    ``compiled``: the update through ``make_update`` (fused losses only, with its
    ``policy_delay``), compiled now; the closure's ``compile_seconds`` says how long that
    took."""
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(BUFFER), batch_size=batch_size)
    buffer.extend(random_transitions(BUFFER))
    actor = deterministic_actor() if algo == "td3" else stochastic_actor(actor_cls)
    ensemble = (
        EnsembleQNetwork(q_config(), num_heads=heads) if heads != 2 else DoubleQNetwork(q_config())
    )
    if critic_kind == "fused":
        critic, cls = ensemble, FUSED[algo]
    elif critic_kind == "heads":
        critic, cls = ensemble.heads, STOCK[algo]
    else:
        critic, cls = value_operator_q(), STOCK[algo]
    kwargs = {}
    if algo != "cql":
        kwargs["num_qvalue_nets"] = heads
    if algo in ("sac", "redq", "cql"):
        kwargs["action_spec"] = SPEC
    if algo == "td3":
        kwargs["action_spec"] = SPEC
    if algo in ("sac", "td3", "cql"):
        kwargs["loss_function"] = "l2"
    if algo == "iql":
        loss = cls(actor, critic, value_operator_v(), **kwargs)
    else:
        loss = cls(actor, qvalue_network=critic, **kwargs)
    if critic_kind == "heads":
        ensemble.bind_to_loss(loss)  # the issue-8 way: the user's critic sees the weights
    loss.make_value_estimator(gamma=0.99)
    updater = SoftUpdate(loss, tau=0.005)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3, fused=True)
    keys = None
    if compiled:
        step = make_update(loss, optimizer, updater, policy_delay=policy_delay)
        tic = time.perf_counter()
        for _ in range(policy_delay):  # each of its graphs
            step(buffer.sample())
        seconds = time.perf_counter() - tic

        def compiled_update() -> None:
            step(buffer.sample())

        compiled_update.loss, compiled_update.compile_seconds = loss, seconds
        return compiled_update

    def update() -> None:
        nonlocal keys
        out = loss(buffer.sample())
        if keys is None:
            keys = [k for k in out.keys() if k.startswith("loss_")]
        total = sum(out[k] for k in keys)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        updater.step()

    update.loss = loss
    return update


def sb3_update(batch_size: int, algo: str = "sac", **algo_kwargs) -> Callable:
    """SB3's ``SAC.train(gradient_steps=1)`` (or ``TD3``'s) on a filled buffer (its own sampling).

    ``algo_kwargs`` go to the algorithm's constructor (``policy_delay=1`` for TD3)."""
    from stable_baselines3 import SAC, TD3
    from stable_baselines3.common.logger import Logger

    kwargs = {"ent_coef": "auto_1.0"} if algo == "sac" else {}
    kwargs.update(algo_kwargs)
    model = {"sac": SAC, "td3": TD3}[algo](
        "MlpPolicy",
        "Pendulum-v1",
        learning_rate=1e-3,
        buffer_size=BUFFER,
        learning_starts=BUFFER,
        batch_size=batch_size,
        policy_kwargs={"net_arch": [HIDDEN, HIDDEN]},
        seed=0,
        device="cpu",
        **kwargs,
    )
    # an in-memory logger: SB3's default one creates a /tmp/SB3-<date> folder per run
    model.set_logger(Logger(folder=None, output_formats=[]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.learn(total_timesteps=BUFFER)  # random warm-up fills the buffer, sets up logger
    torch.set_num_threads(1)

    def update() -> None:
        model.train(gradient_steps=1, batch_size=batch_size)

    return update


def plain_update(batch_size: int, one_graph: bool = False) -> Callable:
    """CleanRL-style SAC in plain PyTorch: two Q MLPs, three Adams, index-sampled buffer.

    ``one_graph``: the same losses (all from the parameters before the step, as ``SACLoss``
    computes them), their gradients by ``torch.autograd.grad``, PyTorch's functional foreach
    Adam and the target ``lerp_``, with the sampling, as one ``torch.compile(fullgraph=True)``
    graph: the floor for a compiled PyTorch SAC step."""
    data = random_transitions(BUFFER)
    obs, act = data["observation"], data["action"]
    rew, next_obs = data["next", "reward"], data["next", "observation"]
    not_done = (~data["next", "terminated"]).float()

    def mlp(n_in: int, n_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(n_in, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, n_out),
        )

    actor = mlp(OBS, 2 * ACT)
    q1, q2 = mlp(OBS + ACT, 1), mlp(OBS + ACT, 1)
    q1_t, q2_t = copy.deepcopy(q1), copy.deepcopy(q2)
    log_alpha = torch.zeros((), requires_grad=True)
    q_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=1e-3)
    a_opt = torch.optim.Adam(actor.parameters(), lr=1e-3)
    alpha_opt = torch.optim.Adam([log_alpha], lr=1e-3)
    target_entropy = -float(ACT)
    params = [*q1.parameters(), *q2.parameters()]
    target_params = [*q1_t.parameters(), *q2_t.parameters()]

    def sample(o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = actor(o).chunk(2, -1)
        std = log_std.clamp(-5, 2).exp()
        u = mean + std * torch.randn_like(mean)
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mean) / std) ** 2 - std.log() - 0.9189385332046727).sum(-1)
        logp = logp - torch.log(1 - a.pow(2) + 1e-6).sum(-1)
        return 2.0 * a, logp

    def critic_loss() -> tuple:
        """A sampled batch, the clipped double-Q critic loss on it, and alpha."""
        idx = torch.randint(BUFFER, (batch_size,))
        o, a, r, o2, nd = obs[idx], act[idx], rew[idx], next_obs[idx], not_done[idx]
        alpha = log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = sample(o2)
            x2 = torch.cat([o2, a2], -1)
            q_next = torch.min(q1_t(x2), q2_t(x2)) - alpha * logp2.unsqueeze(-1)
            y = r + 0.99 * nd * q_next
        x = torch.cat([o, a], -1)
        return o, alpha, 0.5 * ((q1(x) - y).pow(2).mean() + (q2(x) - y).pow(2).mean())

    if one_graph:
        return _plain_one_graph(
            critic_loss, sample, (q1, q2, q1_t, q2_t, actor, log_alpha), target_entropy
        )

    def update() -> None:
        o, alpha, q_loss = critic_loss()
        q_opt.zero_grad()
        q_loss.backward()
        q_opt.step()
        a_pi, logp = sample(o)
        x_pi = torch.cat([o, a_pi], -1)
        actor_loss = (alpha * logp - torch.min(q1(x_pi), q2(x_pi)).squeeze(-1)).mean()
        a_opt.zero_grad()
        actor_loss.backward()
        a_opt.step()
        alpha_loss = -(log_alpha * (logp.detach() + target_entropy)).mean()
        alpha_opt.zero_grad()
        alpha_loss.backward()
        alpha_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(target_params, params, 0.005)

    return update


def _plain_one_graph(critic_loss, sample, nets, target_entropy) -> Callable:
    from torch.optim.adam import adam

    q1, q2, q1_t, q2_t, actor, log_alpha = nets
    q_params = [*q1.parameters(), *q2.parameters()]
    target_params = [*q1_t.parameters(), *q2_t.parameters()]
    groups = [q_params, list(actor.parameters()), [log_alpha]]
    states = [
        [(torch.zeros(()), torch.zeros_like(p), torch.zeros_like(p)) for p in group]
        for group in groups
    ]
    lr = torch.tensor(1e-3)

    def step() -> None:
        o, alpha, q_loss = critic_loss()
        a_pi, logp = sample(o)
        x_pi = torch.cat([o, a_pi], -1)
        q_pi = torch.min(q1(x_pi), q2(x_pi)).squeeze(-1)
        actor_loss = (alpha * logp - q_pi).mean()
        alpha_loss = -(log_alpha * (logp.detach() + target_entropy)).mean()
        grads = [
            torch.autograd.grad(q_loss, groups[0]),
            torch.autograd.grad(actor_loss, groups[1]),
            torch.autograd.grad(alpha_loss, groups[2]),
        ]
        with torch.no_grad():
            for group, grad, state in zip(groups, grads, states, strict=True):
                adam(
                    group,
                    list(grad),
                    [s[1] for s in state],
                    [s[2] for s in state],
                    [],
                    [s[0] for s in state],
                    foreach=True,
                    capturable=True,
                    amsgrad=False,
                    beta1=0.9,
                    beta2=0.999,
                    lr=lr,
                    weight_decay=0.0,
                    eps=1e-8,
                    maximize=False,
                )
            torch._foreach_lerp_(target_params, q_params, 0.005)

    compiled = torch.compile(step, fullgraph=True)

    def update() -> None:
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            compiled()

    tic = time.perf_counter()
    update()
    update.compile_seconds = time.perf_counter() - tic
    return update


def loss_compiled_update(batch_size: int) -> Callable:
    """The fused SAC update with only the loss module under ``torch.compile``."""
    update = torchrl_update("sac", "fused", batch_size, actor_cls=GrlProbabilisticActor)
    loss = update.loss
    compiled = torch.compile(loss)
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(BUFFER), batch_size=batch_size)
    buffer.extend(random_transitions(BUFFER))
    updater = SoftUpdate(loss, tau=0.005)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        out = compiled(buffer.sample())
        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        updater.step()

    tic = time.perf_counter()
    step()
    step.compile_seconds = time.perf_counter() - tic
    return step


class SBXRunner:
    """SBX's ``train(gradient_steps=updates)`` in ``benchmarks/sbx_worker.py`` (own venv)."""

    def __init__(
        self, python: str, algo: str, batch_size: int, updates: int, keep_memory: bool
    ) -> None:
        worker = Path(__file__).with_name("sbx_worker.py")
        self.process = subprocess.Popen(
            [python, str(worker), algo, str(batch_size), str(updates), str(int(keep_memory))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.close()
            raise RuntimeError(f"sbx_worker.py ({python}) did not start: {line!r}")

    def run(self) -> tuple[float, float]:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        wall, cpu = self.process.stdout.readline().split()
        return float(wall), float(cpu)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def timed(update: Callable, n: int) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``n`` calls of ``update``."""
    tic, cpu_tic = time.perf_counter(), time.process_time()
    for _ in range(n):
        update()
    return time.perf_counter() - tic, time.process_time() - cpu_tic


def build(
    groups: list[str],
    batch_size: int,
    compile_: bool,
    sbx: str | None,
    updates: int,
    keep_memory: bool,
) -> dict[str, tuple[str, Callable]]:
    """``name: (reference name, run)``; ``run()`` does ``updates`` updates -> (wall, CPU) s.

    ``keep_memory``: SBX's worker calls ``keep_freed_memory()`` too (this process already did).
    """
    variants: dict[str, tuple[str, Callable]] = {}

    def add(name: str, ref: str, make: Callable[[], Callable]) -> None:
        try:
            update = make()
        except Exception as err:  # noqa: BLE001 - reported, not hidden
            print(f"{name}: fails: {type(err).__name__}: {str(err)[:300]}")
            return
        seconds = getattr(update, "compile_seconds", None)
        if seconds is not None:
            print(f"{name}: compiled in {seconds:.1f} s", flush=True)
        variants[name] = (ref, lambda: timed(update, updates))

    def add_sbx(name: str, ref: str, algo: str) -> None:
        runner = SBXRunner(sbx, algo, batch_size, updates, keep_memory)
        RUNNERS.append(runner)
        variants[name] = (ref, runner.run)

    if "sac" in groups:
        ref = "SB3 SAC.train()"
        add(ref, ref, lambda: sb3_update(batch_size))
        add(
            "SAC ours eager (fused + grl actor)",
            ref,
            lambda: torchrl_update("sac", "fused", batch_size, actor_cls=GrlProbabilisticActor),
        )
        if compile_:
            add(
                "SAC ours compiled (make_update)",
                ref,
                lambda: torchrl_update(
                    "sac", "fused", batch_size, actor_cls=GrlProbabilisticActor, compiled=True
                ),
            )
        add(
            "SAC fused, TorchRL actor",
            ref,
            lambda: torchrl_update("sac", "fused", batch_size),
        )
        add(
            "SAC stock + ValueOperator(MLP)",
            ref,
            lambda: torchrl_update("sac", "value_operator", batch_size),
        )
        add("SAC plain PyTorch eager (CleanRL)", ref, lambda: plain_update(batch_size))
        if compile_:
            add(
                "SAC plain PyTorch, one graph",
                ref,
                lambda: plain_update(batch_size, one_graph=True),
            )
            add("SAC ours, torch.compile(loss) only", ref, lambda: loss_compiled_update(batch_size))
        if sbx:
            add_sbx("SBX SAC.train() (JAX)", ref, "sac")
    if "td3" in groups:
        ref = "SB3 TD3.train()"
        add(ref, ref, lambda: sb3_update(batch_size, "td3"))
        add("TD3 ours eager (fused)", ref, lambda: torchrl_update("td3", "fused", batch_size))
        if compile_:
            add(
                "TD3 ours compiled (make_update)",
                ref,
                lambda: torchrl_update("td3", "fused", batch_size, compiled=True),
            )
            add(
                "TD3 ours compiled, policy_delay=2",
                ref,
                lambda: torchrl_update("td3", "fused", batch_size, compiled=True, policy_delay=2),
            )
        add(
            "TD3 stock + ValueOperator(MLP)",
            ref,
            lambda: torchrl_update("td3", "value_operator", batch_size),
        )
        # the same work as TorchRL's TD3Loss: actor and targets updated at every step
        add(
            "SB3 TD3.train(), policy_delay=1",
            ref,
            lambda: sb3_update(batch_size, "td3", policy_delay=1),
        )
        if sbx:
            add_sbx("SBX TD3.train() (JAX)", ref, "td3")
    for algo, heads in (("redq", 10), ("iql", 2), ("cql", 2)):
        group = "redq" if algo == "redq" else "others"
        if group not in groups:
            continue
        tag = f"{algo.upper()} ({heads} heads)"
        ref = f"{tag} stock + ValueOperator(MLP)"
        add(ref, ref, lambda a=algo, h=heads: torchrl_update(a, "value_operator", batch_size, h))
        add(
            f"{tag} ours eager (fused)",
            ref,
            lambda a=algo, h=heads: torchrl_update(a, "fused", batch_size, h),
        )
        if compile_:
            add(
                f"{tag} ours compiled (make_update)",
                ref,
                lambda a=algo, h=heads: torchrl_update(a, "fused", batch_size, h, compiled=True),
            )
        add(
            f"{tag} stock + EnsembleQNetwork.heads",
            ref,
            lambda a=algo, h=heads: torchrl_update(a, "heads", batch_size, h),
        )
    return variants


RUNNERS: list[SBXRunner] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--updates", type=int, default=10, help="updates per variant per round")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--groups", default="sac,td3,redq,others")
    parser.add_argument("--compile", action="store_true", help="add the compiled variants")
    parser.add_argument("--sbx", default=None, help="a Python with sbx-rl: add SBX's variants")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="grl_torchrl.allocator.keep_freed_memory() in this process and SBX's: "
        "every contestant alike",
    )
    args = parser.parse_args()
    skip_pandas_probe()
    if args.keep_freed_memory and not keep_freed_memory():
        raise SystemExit("--keep-freed-memory: the C library is not glibc; nothing to set")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    try:
        variants = build(
            args.groups.split(","),
            args.batch_size,
            args.compile,
            args.sbx,
            args.updates,
            args.keep_freed_memory,
        )
        torch.set_num_threads(args.threads)
        for _, run in variants.values():  # warm-up: allocator, lazy inits
            run()
        wall: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, (_, run) in variants.items():
                wall_s, cpu_s = run()
                wall[name].append(wall_s / args.updates * 1e3)
                cpu[name].append(cpu_s / args.updates * 1e3)
    finally:
        for runner in RUNNERS:
            runner.close()
    print(
        f"\nper-update time, batch {args.batch_size}, {torch.get_num_threads()} thread(s), "
        f"{args.rounds} interleaved rounds x {args.updates} updates; medians over rounds. "
        "'ratio' is the median over rounds of (this variant / reference) in the same round, "
        "on process CPU time, which other processes' load disturbs least."
    )
    print(f"{'variant':44s} {'wall ms':>8s} {'CPU ms':>8s} {'ratio':>6s} {'wall r':>6s}  reference")
    for name, (ref, _) in variants.items():
        ratios = [a / b for a, b in zip(cpu[name], cpu[ref], strict=True)]
        wall_ratios = [a / b for a, b in zip(wall[name], wall[ref], strict=True)]
        print(
            f"{name:44s} {statistics.median(wall[name]):8.2f} {statistics.median(cpu[name]):8.2f}"
            f" {statistics.median(ratios):5.2f}x {statistics.median(wall_ratios):5.2f}x  {ref}"
        )


if __name__ == "__main__":
    main()
