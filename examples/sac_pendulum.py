"""Online SAC on Pendulum-v1 with grl_torchrl's DoubleQNetwork and GymEnvSimulator.

TorchRL does the algorithm (``SoftUpdate``, ``TensorDictReplayBuffer``, and ``SACLoss``'s
maths); grl_torchrl supplies the critic (a ``DoubleQNetwork`` built from a GenerativeRL
config), the simulator that collects and evaluates, and ``grl_torchrl.objectives.SACLoss``:
TorchRL's ``SACLoss`` with the critic's two heads evaluated in one batched pass (same
values, no ``torch.vmap``), which trains the ``DoubleQNetwork`` it is given.

Run (``make demo`` runs it with the defaults)::

    python examples/sac_pendulum.py                    # seed 0, 15k env steps
    python examples/sac_pendulum.py seed=1 logger=tensorboard
    python examples/sac_pendulum.py compile=1          # the update as one compiled graph

Every entry of ``OPTIONS`` below can be given as ``key=value`` (``--help`` lists them).
Output goes to ``runs/sac_pendulum/seed<seed>/``: ``logs/`` (TorchRL CSV or TensorBoard logger),
``checkpoint.pt`` (state dicts + config) and ``learning_curve.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from _common import (
    Option,
    continuous_env_id,
    defaults,
    make_logger,
    output_folder,
    parse_options,
    plot_curves,
    seed_everything,
    skip_pandas_probe,
)
from easydict import EasyDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.modules import MLP, NormalParamExtractor, TanhNormal
from torchrl.objectives import SoftUpdate
from tqdm import tqdm

from grl_torchrl.objectives import SACLoss, make_update
from grl_torchrl.rl_modules import (
    DoubleQNetwork,
    GymEnvSimulator,
    ProbabilisticActor,
    evaluation_summary,
)

OPTIONS = dict(
    env_id=Option(
        "Pendulum-v1", "gymnasium id of a continuous-action (Box) env", check=continuous_env_id
    ),
    seed=Option(0, "random seed", low=0),
    total_steps=Option(15_000, "environment steps, warm-up included", low=1),
    random_steps=Option(
        1_000,
        "uniform random actions before learning starts (SB3: learning_starts; "
        ">= total_steps: no training)",
        low=0,
    ),
    train_freq=Option(
        50, "env steps per collection chunk; as many gradient steps follow each chunk", low=1
    ),
    batch_size=Option(256, "transitions per gradient step (at most buffer_size)", low=1),
    hidden_size=Option(256, "actor and critic: two hidden layers of this width", low=1),
    lr=Option(1e-3, "Adam learning rate of actor, critic and temperature", low=0, low_open=True),
    gamma=Option(0.99, "discount factor", low=0, high=1),
    tau=Option(0.005, "Polyak factor of the target critic", low=0, high=1, low_open=True),
    alpha_init=Option(
        1.0, "initial SAC temperature (learned, target entropy -dim(A))", low=0, low_open=True
    ),
    buffer_size=Option(100_000, "replay buffer capacity (transitions)", low=1),
    eval_every=Option(2_500, "env steps between evaluations (0: final evaluation only)", low=0),
    eval_episodes=Option(10, "episodes per evaluation", low=1),
    num_threads=Option(1, "torch intra-op threads", low=1),
    compile=Option(
        0,
        "1: each gradient step as one compiled graph (grl_torchrl.objectives.make_update): "
        "~45% less time per step, after compiling for ~10 s (warm cache) to about a minute "
        "(cold, or a loaded machine); pays for runs of several thousand gradient steps. "
        "0: TorchRL's eager update (bit-identical to loss.backward + optimizer.step)",
        choices=(0, 1),
    ),
    logger=Option("csv", "logger backend", choices=("csv", "tensorboard")),
    out_dir=Option("", "output folder ('' = runs/sac_pendulum/seed<seed>)", check=output_folder),
)
config = defaults(OPTIONS)  # the default values (read by sac_pendulum_workers.py, tests)


def check_options(cfg: EasyDict) -> str | None:
    """Rules that tie options together (``parse_options``' ``check``)."""
    if cfg.batch_size > cfg.buffer_size:
        return f"batch_size={cfg.batch_size} exceeds buffer_size={cfg.buffer_size}"
    return None


def build_networks(
    cfg: EasyDict, obs_dim: int, action_spec
) -> tuple[ProbabilisticActor, DoubleQNetwork]:
    """The tanh-Gaussian actor and the double-Q critic (also used to reload a checkpoint)."""
    act_dim = action_spec.shape[-1]
    actor_net = nn.Sequential(
        MLP(
            in_features=obs_dim,
            out_features=2 * act_dim,
            num_cells=[cfg.hidden_size] * 2,
            activation_class=nn.ReLU,  # torchrl's MLP defaults to Tanh
        ),
        NormalParamExtractor(),  # splits into loc and a positive scale
    )
    # grl_torchrl's ProbabilisticActor is TorchRL's with a direct get_dist (the loss calls it
    # twice per update): the same distribution, ~0.37 ms less per update
    actor = ProbabilisticActor(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=action_spec,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": action_spec.space.low, "high": action_spec.space.high},
    )
    # The critic config as GenerativeRL pipelines write it: the backbone sees [action, state].
    critic = DoubleQNetwork(
        {
            "backbone": {
                "type": "ConcatenateMLP",
                "args": {
                    "hidden_sizes": [act_dim + obs_dim, cfg.hidden_size, cfg.hidden_size],
                    "output_size": 1,
                    "activation": "relu",
                },
            }
        }
    )
    return actor, critic


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_options(OPTIONS, argv, check=check_options)
    skip_pandas_probe()
    seed_everything(cfg.seed, cfg.num_threads)
    out_dir = Path(cfg.out_dir or f"runs/sac_pendulum/seed{cfg.seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    logger = make_logger(cfg.logger, out_dir)
    start = time.perf_counter()

    sim = GymEnvSimulator(cfg.env_id, seed=cfg.seed)
    try:
        obs_dim = sim.env.observation_spec["observation"].shape[-1]
        action_spec = sim.env.action_spec
        actor, critic = build_networks(cfg, obs_dim, action_spec)
        # Given the DoubleQNetwork itself, the loss owns the two heads' parameters and binds
        # `critic` to them: the optimiser below trains `critic`, which the checkpoint saves.
        loss_module = SACLoss(
            actor, qvalue_network=critic, loss_function="l2", alpha_init=cfg.alpha_init
        )
        loss_module.make_value_estimator(gamma=cfg.gamma)
        target_updater = SoftUpdate(loss_module, tau=cfg.tau)
        # The actor, critic and temperature losses reach disjoint parameters (SACLoss detaches
        # the critic in the actor loss and the actor in the critic target), so one backward
        # of their sum and one Adam equal three optimisers with the same learning rate.
        optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg.lr, fused=True)
        buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(cfg.buffer_size))
        # loss, one backward of the summed losses, Adam and the target update: the stock
        # eager calls (compile=0) or the same maths as one compiled graph (compile=1)
        update = make_update(loss_module, optimizer, target_updater, compile=bool(cfg.compile))

        # Exploration for the collector: the actor's own network and the same tanh-Gaussian
        # as its TanhNormal, as a plain function of the observation. Calling the
        # ProbabilisticActor builds a TanhNormal through the TensorDict modules at every env
        # step: ~0.55 ms of a ~1.06 ms step (measured); this policy brings the step to ~0.43 ms.
        actor_net = actor.module[0].module  # MLP + NormalParamExtractor -> (loc, scale)
        low, high = action_spec.space.low, action_spec.space.high

        @torch.no_grad()
        def explore(observation: torch.Tensor) -> torch.Tensor:
            loc, scale = actor_net(observation)
            squashed = torch.tanh(loc + scale * torch.randn_like(loc))
            return low + (high - low) * (squashed + 1) / 2

        curves = {"train episodes": ([], []), "evaluation": ([], [])}
        episode_return, eval_time, steps = 0.0, 0.0, 0
        last_eval = float("nan")
        pbar = tqdm(total=cfg.total_steps, desc="SAC Pendulum", unit="step")

        def evaluate() -> float:
            nonlocal eval_time
            tic = time.perf_counter()
            summary = evaluation_summary(sim.evaluate(actor, num_episodes=cfg.eval_episodes))
            eval_time += time.perf_counter() - tic
            curves["evaluation"][0].append(steps)
            curves["evaluation"][1].append(summary["return_mean"])
            logger.log_scalar("eval/return_mean", summary["return_mean"], step=steps)
            logger.log_scalar("eval/return_std", summary["return_std"], step=steps)
            return summary["return_mean"]

        while steps < cfg.total_steps:
            warm_up = steps < cfg.random_steps
            chunk = cfg.random_steps if warm_up else cfg.train_freq
            chunk = min(chunk, cfg.total_steps - steps)
            data = sim.collect_steps(explore, num_steps=chunk, random_policy=warm_up)
            buffer.extend(data)
            rewards = data["next", "reward"].flatten().tolist()
            dones = data["next", "done"].flatten().tolist()
            for reward, done in zip(rewards, dones, strict=True):
                steps += 1
                episode_return += reward
                if done:
                    curves["train episodes"][0].append(steps)
                    curves["train episodes"][1].append(episode_return)
                    logger.log_scalar("train/episode_return", episode_return, step=steps)
                    episode_return = 0.0
            pbar.update(chunk)

            if not warm_up:
                # One draw for the whole chunk: the buffer does not change during these updates
                # and the sampler draws with replacement, so this is distributed exactly as
                # `chunk` separate draws of batch_size, at a fraction of the indexing cost.
                batches = buffer.sample(chunk * cfg.batch_size).reshape(chunk, cfg.batch_size)
                for batch in batches.unbind(0):
                    losses = update(batch)
                for key in ("loss_actor", "loss_qvalue", "alpha", "entropy"):
                    logger.log_scalar(f"train/{key}", losses[key].item(), step=steps)

            if cfg.eval_every and steps % cfg.eval_every < chunk and steps < cfg.total_steps:
                last_eval = evaluate()
            train_returns = curves["train episodes"][1]
            pbar.set_postfix_str(
                f"last episode {train_returns[-1] if train_returns else float('nan'):.0f}, "
                f"last eval {last_eval:.0f}"
            )
        pbar.close()
        train_time = time.perf_counter() - start - eval_time
        final = evaluation_summary(sim.evaluate(actor, num_episodes=cfg.eval_episodes))
    finally:
        sim.close()
    curves["evaluation"][0].append(steps)
    curves["evaluation"][1].append(final["return_mean"])
    logger.log_scalar("eval/return_mean", final["return_mean"], step=steps)
    logger.log_scalar("eval/return_std", final["return_std"], step=steps)

    torch.save(
        {
            "config": dict(cfg),
            "actor": actor.state_dict(),
            "critic": critic.state_dict(),
            "log_alpha": loss_module.log_alpha.detach().clone(),
        },
        out_dir / "checkpoint.pt",
    )
    plot_curves(
        out_dir / "learning_curve.png",
        curves,
        title=f"SAC on {cfg.env_id} (seed {cfg.seed})",
        xlabel="environment steps",
        ylabel="episode return",
    )
    result = {
        "return_mean": final["return_mean"],
        "return_std": final["return_std"],
        "env_steps": steps,
        "train_time_s": train_time,
        "wall_time_s": time.perf_counter() - start,
        "out_dir": out_dir,
        "actor": actor,
        "critic": critic,
    }
    print(
        f"SAC {cfg.env_id} seed={cfg.seed}: mean return {final['return_mean']:.1f} "
        f"± {final['return_std']:.1f} over {cfg.eval_episodes} episodes after {steps} env steps; "
        f"train time {train_time:.1f} s, wall time {result['wall_time_s']:.1f} s -> {out_dir}"
    )
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
