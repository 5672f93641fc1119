"""OneShotValueFunction fit to Monte-Carlo returns-to-go on Pendulum-v1 ("one-shot": no bootstrap).

A fixed, deterministic policy (a saturated PD controller, ``pd_policy`` below) plays whole
episodes in ``GymEnvSimulator``; every visited state is labelled with its discounted
return-to-go ``G_t = sum_k gamma^k r_{t+k}`` up to the end of its episode. The value function
is regressed onto ``G_t`` with ``OneShotValueFunction.v_loss`` and its ``v_target`` follows by
Polyak averaging. The score is R^2 on held-out episodes.

Why the time condition: Pendulum episodes are cut at 200 steps, so ``G_t`` depends on how
many steps are left as well as on the state (with gamma = 0.99 the last ~100 steps of an
episode see their return shrink). The state alone cannot explain that part, so by default
the fraction of the episode left, ``(T - t) / T``, is fed as the network's ``condition``
(a ``condition_encoder`` in the config). ``time_condition=false`` drops it, to measure
the difference. The controller and Pendulum are deterministic, so ``G_t`` is a function of
(state, time left) and R^2 close to 1 is reachable.

Run::

    python examples/one_shot_value.py                      # gamma 0.99, time condition on
    python examples/one_shot_value.py time_condition=false

Output in ``runs/one_shot_value/seed<seed>/``: ``logs/``, ``checkpoint.pt``,
``learning_curve.png`` (held-out R^2 against gradient steps).
"""

from __future__ import annotations

import time
from pathlib import Path

import gymnasium
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
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from tqdm import tqdm

from grl_torchrl.rl_modules import GymEnvSimulator, OneShotValueFunction

OPTIONS = dict(
    env_id=Option(
        "Pendulum-v1", "gymnasium id (the fixed PD policy is Pendulum's)", choices=("Pendulum-v1",)
    ),
    seed=Option(0, "random seed", low=0),
    gamma=Option(0.99, "discount of the returns-to-go", low=0, high=1),
    time_condition=Option(True, "feed the fraction of the episode left as the `condition` input"),
    train_episodes=Option(100, "episodes of the PD policy to train on", low=1),
    test_episodes=Option(20, "held-out episodes: R^2 is measured on these", low=1),
    train_steps=Option(3_000, "gradient steps (0: no training, measure the untrained V)", low=0),
    batch_size=Option(256, "states per gradient step", low=1),
    hidden_size=Option(256, "V: two hidden layers of this width", low=1),
    lr=Option(1e-3, "Adam learning rate", low=0, low_open=True),
    tau=Option(0.005, "Polyak factor of v_target", low=0, high=1, low_open=True),
    eval_every=Option(250, "gradient steps between R^2 measurements (0: final one only)", low=0),
    num_threads=Option(1, "torch intra-op threads", low=1),
    logger=Option("csv", "logger backend", choices=("csv", "tensorboard")),
    out_dir=Option("", "output folder ('' = runs/one_shot_value/seed<seed>)", check=output_folder),
)
config = defaults(OPTIONS)


def pd_policy(observation: torch.Tensor) -> torch.Tensor:
    """The fixed policy: torque -(5 theta + theta_dot), saturated at the +-2 limit."""
    theta = torch.atan2(observation[:, 1:2], observation[:, 0:1])
    return (-(5.0 * theta + observation[:, 2:3])).clamp(-2.0, 2.0)


def label_returns(data: TensorDict, gamma: float, horizon: int) -> TensorDict:
    """Adds ``return_to_go`` and ``time_left`` (fraction of ``horizon``) to each step."""
    rewards = data["next", "reward"].flatten().tolist()
    ends = data["next", "done"].flatten().tolist()
    returns, steps_left = [0.0] * len(rewards), [0] * len(rewards)
    running, left = 0.0, 0
    for i in reversed(range(len(rewards))):
        if ends[i]:  # last step of an episode: nothing after it counts
            running, left = 0.0, 0
        running = rewards[i] + gamma * running
        left += 1
        returns[i], steps_left[i] = running, left
    data["return_to_go"] = torch.tensor(returns).unsqueeze(-1)
    data["time_left"] = torch.tensor(steps_left, dtype=torch.float32).unsqueeze(-1) / horizon
    return data


def build_value_function(cfg: EasyDict, obs_dim: int) -> OneShotValueFunction:
    """The value function (also used to reload a checkpoint)."""
    cond_dim = 1 if cfg.time_condition else 0
    v_config = {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {
                "hidden_sizes": [obs_dim + cond_dim, cfg.hidden_size, cfg.hidden_size],
                "output_size": 1,
                "activation": "relu",
            },
        }
    }
    if cfg.time_condition:
        v_config["condition_encoder"] = {"type": "identity"}
    return OneShotValueFunction({"v_alpha": 1.0, "DoubleVNetwork": v_config})


def r_squared(prediction: torch.Tensor, target: torch.Tensor) -> float:
    residual = (target - prediction).pow(2).sum()
    total = (target - target.mean()).pow(2).sum()
    return float(1.0 - residual / total)


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_options(OPTIONS, argv)
    skip_pandas_probe()
    seed_everything(cfg.seed, cfg.num_threads)
    out_dir = Path(cfg.out_dir or f"runs/one_shot_value/seed{cfg.seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    logger = make_logger(cfg.logger, out_dir)
    start = time.perf_counter()

    with GymEnvSimulator(cfg.env_id, seed=cfg.seed) as sim:
        train = sim.collect_episodes(pd_policy, num_episodes=cfg.train_episodes)
        test = sim.collect_episodes(pd_policy, num_episodes=cfg.test_episodes)
        obs_dim = sim.env.observation_spec["observation"].shape[-1]
    horizon = gymnasium.spec(cfg.env_id).max_episode_steps  # 200 steps for Pendulum-v1
    train = label_returns(train, cfg.gamma, horizon)
    test = label_returns(test, cfg.gamma, horizon)

    ov = build_value_function(cfg, obs_dim)
    optimizer = torch.optim.Adam(ov.v.parameters(), lr=cfg.lr)
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(train.shape[0]), batch_size=cfg.batch_size
    )
    buffer.extend(train.select("observation", "time_left", "return_to_go"))

    def condition(td: TensorDict) -> torch.Tensor | None:
        return td["time_left"] if cfg.time_condition else None

    # torchrl's SoftUpdate works on a LossModule's target parameters; OneShotValueFunction
    # keeps its own frozen copy, so the Polyak step is written out on its parameters.
    online = TensorDict.from_module(ov.v).data
    target = TensorDict.from_module(ov.v_target).data

    curves = {"v (online)": ([], []), "v_target (Polyak)": ([], [])}

    def measure(step: int, loss: torch.Tensor | None) -> tuple[float, float]:
        """Held-out R^2 of v and v_target after ``step`` gradient steps, logged and plotted."""
        with torch.no_grad():
            r2 = r_squared(ov(test["observation"], condition(test)), test["return_to_go"])
            pred_target = ov.v_target(test["observation"], condition(test))
            r2_target = r_squared(pred_target, test["return_to_go"])
        for (xs, ys), value in zip(curves.values(), (r2, r2_target), strict=True):
            xs.append(step)
            ys.append(value)
        if loss is not None:  # None: no gradient step yet (train_steps=0)
            logger.log_scalar("train/v_loss", loss.item(), step=step)
        logger.log_scalar("test/r2", r2, step=step)
        logger.log_scalar("test/r2_target", r2_target, step=step)
        return r2, r2_target

    loss = None
    for step in tqdm(range(1, cfg.train_steps + 1), desc="one-shot V", unit="step"):
        batch = buffer.sample()
        loss = ov.v_loss(batch["observation"], batch["return_to_go"], condition(batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        target.lerp_(online, cfg.tau)
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.train_steps:
            measure(step, loss)
    # The final measurement, after the last step (of the untrained V when train_steps=0).
    r2, r2_target = measure(cfg.train_steps, loss)

    torch.save({"config": dict(cfg), "value_function": ov.state_dict()}, out_dir / "checkpoint.pt")
    plot_curves(
        out_dir / "learning_curve.png",
        curves,
        title=f"One-shot V on {cfg.env_id}, held-out R² (gamma={cfg.gamma})",
        xlabel="gradient steps",
        ylabel="R²",
    )
    result = {
        "r2": r2,
        "r2_target": r2_target,
        "train_states": train.shape[0],
        "test_states": test.shape[0],
        "wall_time_s": time.perf_counter() - start,
        "out_dir": out_dir,
        "value_function": ov,
    }
    print(
        f"One-shot V {cfg.env_id} seed={cfg.seed} gamma={cfg.gamma} "
        f"time_condition={cfg.time_condition}: held-out R^2 {r2:.3f} (v), {r2_target:.3f} "
        f"(v_target) on {test.shape[0]} states of {cfg.test_episodes} episodes; "
        f"wall time {result['wall_time_s']:.1f} s -> {out_dir}"
    )
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
