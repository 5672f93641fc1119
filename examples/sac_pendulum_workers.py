"""Online SAC on Pendulum-v1 with data from 2 worker processes (TorchRL's process collector).

The agent, its losses and hyperparameters are those of ``sac_pendulum.py`` (imported from
it); only the data source changes: ``make_collector`` returns TorchRL's own
``MultiSyncCollector`` stepping one Pendulum in each of 2 worker processes, and the
actor's new weights are pushed to the workers after every batch of gradient steps
(``collector.update_policy_weights_(actor)``). Evaluation runs in-process on a
``GymEnvSimulator``.

Run::

    python examples/sac_pendulum_workers.py                  # seed 0, 15k env steps
    python examples/sac_pendulum_workers.py num_workers=4

Every entry of ``OPTIONS`` below can be given as ``key=value`` (``--help`` lists them).
Output goes to ``runs/sac_pendulum_workers/seed<seed>/``: ``logs/``, ``checkpoint.pt`` and
``learning_curve.png``.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch
from _common import (
    Option,
    defaults,
    make_logger,
    output_folder,
    parse_options,
    plot_curves,
    seed_everything,
    skip_pandas_probe,
)
from easydict import EasyDict
from sac_pendulum import OPTIONS as SAC_OPTIONS
from sac_pendulum import build_networks
from sac_pendulum import check_options as check_sac_options
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.objectives import SoftUpdate
from tqdm import tqdm

from grl_torchrl.objectives import SACLoss
from grl_torchrl.rl_modules import (
    GymEnvSimulator,
    evaluation_summary,
    make_collector,
    to_simulator_layout,
)

# sac_pendulum's options except `compile`: this loop keeps TorchRL's eager update, and an
# option that changed nothing would mislead.
OPTIONS = dict(
    {key: option for key, option in SAC_OPTIONS.items() if key != "compile"},
    train_freq=Option(
        50,
        "env steps per collected batch, all workers together (a multiple of num_workers); "
        "as many gradient steps follow each batch",
        low=1,
    ),
    num_workers=Option(2, "worker processes, one env each", low=1),
    backend=Option(
        "process",
        "collector backend (ray needs grl_torchrl[ray])",
        choices=("process", "ray"),
        check=lambda backend: (
            "ray is not installed (pip install grl_torchrl[ray])"
            if backend == "ray" and importlib.util.find_spec("ray") is None
            else None
        ),
    ),
    out_dir=Option(
        "", "output folder ('' = runs/sac_pendulum_workers/seed<seed>)", check=output_folder
    ),
)
config = defaults(OPTIONS)


def check_options(cfg: EasyDict) -> str | None:
    """Rules that tie options together: sac_pendulum's, and whole batches per worker."""
    if cfg.train_freq % cfg.num_workers:
        return (
            f"train_freq={cfg.train_freq} is not a multiple of num_workers={cfg.num_workers} "
            "(every worker steps the same number of times)"
        )
    return check_sac_options(cfg)


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_options(OPTIONS, argv, check=check_options)
    skip_pandas_probe()
    seed_everything(cfg.seed, cfg.num_threads)
    out_dir = Path(cfg.out_dir or f"runs/sac_pendulum_workers/seed{cfg.seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    logger = make_logger(cfg.logger, out_dir)
    start = time.perf_counter()

    # In-process simulator for the evaluations (and the specs the networks are built from).
    sim = GymEnvSimulator(cfg.env_id, seed=cfg.seed)
    obs_dim = sim.env.observation_spec["observation"].shape[-1]
    actor, critic = build_networks(cfg, obs_dim, sim.env.action_spec)
    # The critic reaches SACLoss as in sac_pendulum.py: the fused loss takes the critic itself
    # and binds it to the parameters it trains (so the critic saved below is the trained one).
    loss_module = SACLoss(
        actor, qvalue_network=critic, loss_function="l2", alpha_init=cfg.alpha_init
    )
    loss_module.make_value_estimator(gamma=cfg.gamma)
    target_updater = SoftUpdate(loss_module, tau=cfg.tau)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg.lr, fused=True)
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(cfg.buffer_size))

    # Each batch holds train_freq steps, train_freq / num_workers from every worker; the
    # first random_steps steps sample the action spec uniformly (TorchRL's
    # init_random_frames), as sac_pendulum.py's warm-up does.
    collector = make_collector(
        cfg.env_id,
        actor,
        num_workers=cfg.num_workers,
        frames_per_batch=cfg.train_freq,
        total_frames=cfg.total_steps,
        backend=cfg.backend,
        seed=cfg.seed,
        backend_options={"init_random_frames": cfg.random_steps},
    )
    curves = {"train episodes": ([], []), "evaluation": ([], [])}
    episode_returns = torch.zeros(cfg.num_workers)
    eval_time, steps, last_eval = 0.0, 0, float("nan")
    pbar = tqdm(total=cfg.total_steps, desc="SAC Pendulum, 2 workers", unit="step")

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

    try:
        with collector:
            for batch in collector:
                data = to_simulator_layout(batch)  # [workers, T] -> flat, env-major [N]
                buffer.extend(data)
                chunk = data.numel()
                # training curve: each worker's episodes, counted in total env steps
                rewards = batch["next", "reward"].reshape(cfg.num_workers, -1)
                dones = batch["next", "done"].reshape(cfg.num_workers, -1)
                for t in range(rewards.shape[1]):
                    episode_returns += rewards[:, t]
                    for w in dones[:, t].nonzero().flatten().tolist():
                        step = steps + (t + 1) * cfg.num_workers
                        curves["train episodes"][0].append(step)
                        curves["train episodes"][1].append(float(episode_returns[w]))
                        logger.log_scalar("train/episode_return", episode_returns[w], step=step)
                        episode_returns[w] = 0.0
                steps += chunk
                pbar.update(chunk)

                if steps > cfg.random_steps:
                    batches = buffer.sample(chunk * cfg.batch_size).reshape(chunk, cfg.batch_size)
                    for sample in batches.unbind(0):
                        losses = loss_module(sample)
                        loss = losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"]
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                        target_updater.step()
                    for key in ("loss_actor", "loss_qvalue", "alpha", "entropy"):
                        logger.log_scalar(f"train/{key}", losses[key].item(), step=steps)
                    # the workers act with the new weights from the next batch on
                    collector.update_policy_weights_(actor)

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
        collector.close()
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
        title=f"SAC on {cfg.env_id}, {cfg.num_workers} workers (seed {cfg.seed})",
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
        f"SAC {cfg.env_id} with {cfg.num_workers} {cfg.backend} workers, seed={cfg.seed}: "
        f"mean return {final['return_mean']:.1f} ± {final['return_std']:.1f} over "
        f"{cfg.eval_episodes} episodes after {steps} env steps; train time {train_time:.1f} s, "
        f"wall time {result['wall_time_s']:.1f} s -> {out_dir}"
    )
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
