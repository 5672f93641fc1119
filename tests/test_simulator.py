"""GymEnvSimulator against independent raw-gymnasium rollouts (same seeds, same actions)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from tensordict.nn import TensorDictModule
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.envs import Compose, GymWrapper, RewardScaling, StepCounter, TransformedEnv
from torchrl.envs.libs.gym import default_info_dict_reader

from grl_torchrl.rl_modules import (
    GymEnvSimulator,
    NumpyPolicyWrapper,
    evaluation_summary,
    to_records,
)
from grl_torchrl.rl_modules.simulator import EVAL_SEED_OFFSET, make_gym_env


class ScriptedPolicy:
    """Batched callable replaying a fixed action sequence, one row per env."""

    def __init__(self, actions):
        self.actions = [torch.as_tensor(a) for a in actions]
        self.t = 0

    def __call__(self, obs):
        action = self.actions[self.t]
        self.t += 1
        return action


def cartpole_actions(num_steps, num_envs=1, offset=0):
    return [
        [((t * 7 + i * 3 + offset) // 3) % 2 for i in range(num_envs)] for t in range(num_steps)
    ]


def pendulum_actions(num_steps):
    return [[[2.0 * float(np.sin(0.3 * t))]] for t in range(num_steps)]


def raw_rollout(env_id, seed, actions, **make_kwargs):
    """Independent gymnasium loop: reset(seed) once, reset() after each end."""
    env = gymnasium.make(env_id, **make_kwargs)
    obs, _ = env.reset(seed=seed)
    rows = []
    for action in actions:
        next_obs, reward, terminated, truncated, _ = env.step(np.asarray(action))
        rows.append((obs, action, reward, terminated, truncated, next_obs))
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    return rows


def assert_matches_raw(data, rows):
    assert data.batch_size == (len(rows),)
    for i, (obs, action, reward, terminated, truncated, next_obs) in enumerate(rows):
        torch.testing.assert_close(data["observation"][i], torch.as_tensor(obs))
        torch.testing.assert_close(data["next", "observation"][i], torch.as_tensor(next_obs))
        torch.testing.assert_close(
            data["action"][i], torch.as_tensor(action, dtype=data["action"].dtype)
        )
        assert data["next", "reward"][i].item() == pytest.approx(float(reward), abs=1e-6)
        assert bool(data["next", "terminated"][i]) == terminated
        assert bool(data["next", "truncated"][i]) == truncated
        assert bool(data["next", "done"][i]) == (terminated or truncated)


def assert_continuity(data):
    """Inside a trajectory, next observation == following observation; ids change at ends."""
    ids = data["collector", "traj_ids"]
    done = data["next", "done"].reshape(-1)
    for t in range(data.numel() - 1):
        if ids[t] == ids[t + 1]:
            assert not done[t]
            torch.testing.assert_close(data["next", "observation"][t], data["observation"][t + 1])
        else:
            assert done[t] or t == data.numel() - 1


# ---------------------------------------------------------------- against gymnasium
def test_cartpole_matches_gymnasium_across_calls():
    actions = [a[0] for a in cartpole_actions(70)]
    rows = raw_rollout("CartPole-v1", 3, actions)
    assert sum(r[3] for r in rows) >= 2  # the sequence crosses several episode ends
    with GymEnvSimulator("CartPole-v1", seed=3) as sim:
        policy = ScriptedPolicy([[a] for a in actions])
        parts = [sim.collect_steps(policy, num_steps=1)]
        collector = sim._runners["steps"].collector
        parts += [sim.collect_steps(policy, num_steps=n) for n in (29, 40)]
        assert sim._runners["steps"].collector is collector  # one long-lived collector
    data = torch.cat(parts)
    assert data["action"].dtype == torch.int64 and data["action"].shape == (70,)
    assert data["next", "reward"].shape == (70, 1) and data["next", "done"].shape == (70, 1)
    assert_matches_raw(data, rows)
    assert_continuity(data)
    ends = data["next", "done"].reshape(-1).nonzero().flatten()
    assert ends.tolist() == [i for i, r in enumerate(rows) if r[3] or r[4]]
    assert len(data["collector", "traj_ids"].unique()) == len(ends) + 1


def test_pendulum_truncation_matches_gymnasium():
    actions = pendulum_actions(60)
    rows = raw_rollout("Pendulum-v1", 5, [a[0] for a in actions], max_episode_steps=25)
    with GymEnvSimulator("Pendulum-v1", seed=5, max_episode_steps=25) as sim:
        data = sim.collect_steps(ScriptedPolicy(actions), num_steps=60)
    assert data["action"].shape == (60, 1)
    assert_matches_raw(data, rows)
    assert data["next", "truncated"].reshape(-1).nonzero().flatten().tolist() == [24, 49]
    assert not data["next", "terminated"].any()
    assert_continuity(data)


def test_vector_envs_match_independent_gymnasium_envs():
    num_envs, steps = 3, 20
    actions = cartpole_actions(steps, num_envs)
    with GymEnvSimulator("CartPole-v1", num_envs=num_envs, seed=11) as sim:
        policy = ScriptedPolicy(actions)
        data = torch.cat(
            [sim.collect_steps(policy, num_steps=num_envs * 10) for _ in range(2)]
        ).reshape(2, num_envs, 10)
        with pytest.raises(ValueError, match="multiple of num_envs"):
            sim.collect_steps(policy, num_steps=4)
    for i in range(num_envs):
        rows = raw_rollout("CartPole-v1", 11 + i, [a[i] for a in actions])
        env_data = torch.cat([data[0, i], data[1, i]])
        assert_matches_raw(env_data, rows)
        assert_continuity(env_data)
    flat = data.reshape(-1)
    # trajectory ids are unique across envs
    ids_per_env = [set(data[:, i]["collector", "traj_ids"].flatten().tolist()) for i in range(3)]
    assert not (ids_per_env[0] & ids_per_env[1]) and not (ids_per_env[1] & ids_per_env[2])
    assert flat.batch_size == (60,)


# ------------------------------------------------------------------- seeding
def test_seeded_reproducibility_and_first_reset():
    def run(seed):
        with GymEnvSimulator("Pendulum-v1", num_envs=2, seed=seed) as sim:
            first = sim.collect_steps(None, num_steps=10, random_policy=True)
            torch.rand(100)  # the caller's RNG use must not change the simulator's stream
            second = sim.collect_steps(None, num_steps=10, random_policy=True)
        return torch.cat([first, second])

    a = run(7)
    torch.manual_seed(123)
    b = run(7)
    assert (a == b).all()
    assert a["action"].abs().max() <= 2.0 and a["action"].std() > 0.5  # uniform on [-2, 2]
    c = run(8)
    assert not torch.equal(a["action"], c["action"])

    expected, _ = gymnasium.make("CartPole-v1").reset(seed=42)
    with GymEnvSimulator("CartPole-v1", seed=42) as sim:
        data = sim.collect_steps(None, num_steps=1, random_policy=True)
    torch.testing.assert_close(data["observation"][0], torch.as_tensor(expected))


# --------------------------------------------------------------- episodes
def test_collect_episodes_whole_and_independent_of_collect_steps():
    with (
        GymEnvSimulator("CartPole-v1", seed=0) as sim,
        GymEnvSimulator("CartPole-v1", seed=0) as twin,
    ):
        policy = lambda obs: (obs[:, 2] > 0).long()  # noqa: E731
        before = sim.collect_steps(policy, num_steps=5)
        episodes = sim.collect_episodes(
            lambda obs: torch.zeros(len(obs), dtype=torch.long), num_episodes=3
        )
        after = sim.collect_steps(policy, num_steps=5)
        reference = twin.collect_steps(policy, num_steps=10)
    assert (torch.cat([before, after]) == reference).all()  # carried state untouched
    done = episodes["next", "done"].reshape(-1)
    assert int(done.sum()) == 3 and bool(done[-1])
    assert len(episodes["collector", "traj_ids"].unique()) == 3
    # the first episode starts from the episode env's seeded reset, actions all 0
    rows = raw_rollout("CartPole-v1", EVAL_SEED_OFFSET, [0] * int(done.nonzero()[0] + 1))
    assert_matches_raw(episodes[: len(rows)], rows)
    assert_continuity(episodes)


def test_collect_episodes_num_steps_and_per_env_quotas():
    with GymEnvSimulator("CartPole-v1", num_envs=2, seed=1) as sim:
        data = sim.collect_episodes(
            lambda obs: torch.ones(len(obs), dtype=torch.long), num_steps=50
        )
        assert data.numel() >= 50 and bool(data["next", "done"][-1])
        assert_continuity(data)
        five = sim.collect_episodes(
            lambda obs: torch.ones(len(obs), dtype=torch.long), num_episodes=5
        )
    ids = five["collector", "traj_ids"]
    assert int(five["next", "done"].sum()) == 5 and len(ids.unique()) == 5
    assert_continuity(five)


def test_collect_steps_num_episodes_resets_carried_state():
    with GymEnvSimulator("Pendulum-v1", seed=2, max_episode_steps=10) as sim:
        sim.collect_steps(None, num_steps=3, random_policy=True)
        data = sim.collect_steps(None, num_episodes=2, random_policy=True)
        nxt = sim.collect_steps(None, num_steps=10, random_policy=True)
    assert data.numel() == 20 and int(data["next", "truncated"].sum()) == 2
    # whole episodes: the next call starts a fresh one, which runs 10 steps to its end
    assert nxt["next", "truncated"].reshape(-1).nonzero().flatten().tolist() == [9]
    assert len(nxt["collector", "traj_ids"].unique()) == 1


# -------------------------------------------------------------- evaluation
def test_evaluate_matches_gymnasium_and_keeps_carried_state():
    def policy(obs):
        return (-2.0 * obs[:, 2:]).clamp(-2, 2)

    with (
        GymEnvSimulator("Pendulum-v1", seed=4, max_episode_steps=30) as sim,
        GymEnvSimulator("Pendulum-v1", seed=4, max_episode_steps=30) as twin,
    ):
        before = sim.collect_steps(None, num_steps=4, random_policy=True)
        results = sim.evaluate(policy, num_episodes=2)
        after = sim.collect_steps(None, num_steps=4, random_policy=True)
        reference = twin.collect_steps(None, num_steps=8, random_policy=True)
    assert (torch.cat([before, after]) == reference).all()
    assert [r["total_steps"] for r in results] == [30, 30]
    env = gymnasium.make("Pendulum-v1", max_episode_steps=30)
    obs, _ = env.reset(seed=4 + EVAL_SEED_OFFSET)
    for result in results:
        total, done = 0.0, False
        while not done:
            action = policy(torch.as_tensor(obs)[None]).numpy()[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        obs, _ = env.reset()
        assert result["total_return"] == pytest.approx(total, rel=1e-5)
        assert isinstance(result["total_return"], float) and result["render_output"] is None
        assert result["data_list"].numel() == 30
        assert result["total_return"] == pytest.approx(
            float(result["data_list"]["next", "reward"].sum()), rel=1e-6
        )


def test_evaluate_is_deterministic_for_probabilistic_actor():
    from tensordict.nn import NormalParamExtractor
    from torchrl.modules import ProbabilisticActor, TanhNormal

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), NormalParamExtractor())
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"])
    actor = ProbabilisticActor(
        module,
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs=dict(low=-2.0, high=2.0),
    )
    with GymEnvSimulator("Pendulum-v1", num_envs=2, seed=0, max_episode_steps=15) as sim:
        results = sim.evaluate(actor, num_episodes=3)
        collected = sim.collect_steps(actor, num_steps=10)
    assert len(results) == 3 and all(r["total_steps"] == 15 for r in results)
    episode = results[0]["data_list"]
    loc = module(episode.select("observation"))["loc"]
    expected = TanhNormal(loc, torch.ones_like(loc), low=-2.0, high=2.0).deterministic_sample
    torch.testing.assert_close(episode["action"], expected)
    # only "action" is kept from the policy output, so keys stay replay-buffer stable
    assert "loc" not in collected.keys() and collected["action"].shape == (10, 1)


def test_evaluate_render(tmp_path):
    path = tmp_path / "eval.gif"
    with GymEnvSimulator("CartPole-v1", seed=0, max_episode_steps=5) as sim:
        results = sim.evaluate(
            lambda obs: torch.zeros(len(obs), dtype=torch.long),
            num_episodes=2,
            render_args=dict(video_path=str(path)),
        )
    frames = results[0]["render_output"]
    assert frames.dtype == np.uint8 and frames.shape == (6, 400, 600, 3)
    assert results[1]["render_output"].shape[0] == results[1]["total_steps"] + 1
    env = gymnasium.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=EVAL_SEED_OFFSET)
    np.testing.assert_array_equal(frames[0], env.render())
    env.step(0)
    np.testing.assert_array_equal(frames[1], env.render())
    env.close()
    assert path.stat().st_size > 0


# ---------------------------------------------------------- policies / data
def test_numpy_policy_wrapper_and_transforms_compose():
    def upstream_policy(obs: np.ndarray) -> np.ndarray:
        assert obs.shape == (3,)
        return np.array([float(np.clip(-obs[2], -2, 2))], dtype=np.float32)

    with (
        GymEnvSimulator("Pendulum-v1", num_envs=2, seed=9) as sim,
        GymEnvSimulator("Pendulum-v1", num_envs=2, seed=9) as twin,
    ):
        sim.env = TransformedEnv(sim.env, StepCounter())
        data = sim.collect_steps(NumpyPolicyWrapper(upstream_policy), num_steps=8)
        batched = twin.collect_steps(lambda obs: (-obs[:, 2:]).clamp(-2, 2), num_steps=8)
    torch.testing.assert_close(data["action"], batched["action"])
    assert data["next", "step_count"].reshape(2, 4)[:, -1].tolist() == [4, 4]


def test_replay_buffer_extend_and_to_records():
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(100), batch_size=4)
    actor = TensorDictModule(torch.nn.Linear(4, 2), in_keys=["observation"], out_keys=["logits"])
    greedy = TensorDictModule(
        lambda logits: logits.argmax(-1), in_keys=["logits"], out_keys=["action"]
    )
    from tensordict.nn import TensorDictSequential

    policy = TensorDictSequential(actor, greedy)
    with GymEnvSimulator("CartPole-v1", num_envs=2, seed=0) as sim:
        warmup = sim.collect_steps(None, num_steps=6, random_policy=True)
        online = sim.collect_steps(policy, num_steps=4)
    buffer.extend(warmup)
    buffer.extend(online)
    assert len(buffer) == 10 and buffer.sample()["next", "reward"].shape == (4, 1)
    records = to_records(warmup)
    assert len(records) == 6
    for i, record in enumerate(records):
        torch.testing.assert_close(record["obs"], warmup["observation"][i])
        torch.testing.assert_close(record["next_obs"], warmup["next", "observation"][i])
        assert record["action"] == warmup["action"][i]
        assert record["reward"] == pytest.approx(float(warmup["next", "reward"][i]))
        assert record["done"] is bool(warmup["next", "terminated"][i])
        assert record["truncated"] is bool(warmup["next", "truncated"][i])


def test_evaluation_summary_against_numpy():
    returns, steps = [1.0, -2.5, 4.0], [10, 7, 31]
    summary = evaluation_summary(
        [dict(total_return=r, total_steps=s) for r, s in zip(returns, steps, strict=True)]
    )
    assert summary["num_episodes"] == 3
    assert summary["return_mean"] == pytest.approx(np.mean(returns))
    assert summary["return_std"] == pytest.approx(np.std(returns))
    assert (summary["return_min"], summary["return_max"]) == (-2.5, 4.0)
    assert summary["steps_mean"] == pytest.approx(16.0) and summary["steps_max"] == 31
    with pytest.raises(ValueError, match="empty"):
        evaluation_summary([])


# ------------------------------------------------------------------ errors
class _NoRenderEnv(gymnasium.Env):
    metadata = {"render_modes": []}
    observation_space = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 1.0, False, False, {}


def test_bad_input_errors():
    with pytest.raises(ValueError, match="NoSuchEnv-v0"):
        GymEnvSimulator("NoSuchEnv-v0")
    with pytest.raises(ValueError, match="num_envs"):
        GymEnvSimulator("CartPole-v1", num_envs=0)
    with GymEnvSimulator("CartPole-v1", num_envs=2, seed=0) as sim:
        with pytest.raises(ValueError, match="both are None"):
            sim.collect_steps(None, random_policy=True)
        with pytest.raises(ValueError, match="num_steps must be a positive"):
            sim.collect_steps(None, num_steps=0, random_policy=True)
        with pytest.raises(ValueError, match="num_episodes must be a positive"):
            sim.collect_episodes(None, num_episodes=-1)
        with pytest.raises(ValueError, match="num_episodes must be a positive"):
            sim.evaluate(None, num_episodes=0)
        with pytest.raises(ValueError, match=r"expected shape \(2,\)"):
            sim.collect_steps(lambda obs: torch.zeros(2, 1, dtype=torch.long), num_steps=2)
        with pytest.raises(TypeError, match="policy must be"):
            sim.collect_steps(None, num_steps=2)
        with pytest.raises(ValueError, match="unknown keys"):
            sim.evaluate(lambda obs: obs[:, 0] > 0, render_args=dict(mode="human"))
        # the failed calls left the simulator usable
        assert sim.collect_steps(None, num_steps=4, random_policy=True).numel() == 4
    with GymEnvSimulator("Pendulum-v1") as sim, pytest.raises(ValueError, match=r"\(1, 1\)"):
        sim.collect_steps(lambda obs: torch.zeros(1, 2), num_steps=1)
    gymnasium.register("GrlNoRender-v0", entry_point=_NoRenderEnv, max_episode_steps=3)
    with GymEnvSimulator("GrlNoRender-v0") as sim:
        with pytest.raises(ValueError, match="cannot render"):
            sim.evaluate(lambda obs: torch.zeros(1, dtype=torch.long), render_args={})
        assert sim.evaluate(lambda obs: torch.zeros(1, dtype=torch.long))[0]["total_steps"] == 3


def test_close_releases_everything():
    sim = GymEnvSimulator("CartPole-v1", num_envs=2, seed=0)
    sim.collect_steps(None, num_steps=2, random_policy=True)
    sim.evaluate(lambda obs: torch.zeros(len(obs), dtype=torch.long))
    envs = [runner.env for runner in sim._runners.values()]
    gym_envs = list(sim._gym_envs.values())
    with sim:
        pass
    assert all(env.is_closed for env in envs) and len(envs) == 2
    assert all(env.closed for env in gym_envs)
    with pytest.raises(RuntimeError, match="closed"):
        sim.collect_steps(None, num_steps=2, random_policy=True)
    sim.close()  # idempotent


# ------------------------------------------------- lean TorchRL hooks (simulator/env.py)
@pytest.mark.parametrize("env_id,num_envs", [("Pendulum-v1", 1), ("CartPole-v1", 4)])
def test_lean_hooks_match_stock_gymwrapper(env_id, num_envs):
    """TorchRL's own rollout (step_and_maybe_reset, partial resets), bare and under
    transforms, gives the same data through the lean hooks as through TorchRL's stock
    GymWrapper around the same kind of gymnasium env."""
    for transform in (None, lambda: Compose(StepCounter(), RewardScaling(loc=0.5, scale=2.0))):
        runs = []
        for stock in (True, False):
            env, gym_env = make_gym_env(
                env_id, num_envs, device="cpu", max_episode_steps=None, make_kwargs={}
            )
            assert env._layout is not None  # the lean hooks apply to this env
            if stock:
                env = GymWrapper(gym_env, categorical_action_encoding=True)
            if transform is not None:
                env = TransformedEnv(env, transform())
            env.set_seed(4)
            torch.manual_seed(0)
            runs.append(env.rollout(120, break_when_any_done=False))
            env.close()
        stock_data, lean_data = runs
        assert set(stock_data.keys(True, True)) == set(lean_data.keys(True, True))
        for key in stock_data.keys(True, True):
            assert lean_data[key].dtype == stock_data[key].dtype
            torch.testing.assert_close(lean_data[key], stock_data[key], msg=str(key))
        if num_envs > 1:  # several partial resets were exercised
            assert lean_data["next", "done"].sum() >= 4
    # a layout change (an info reader adds an entry) falls back to the stock hooks
    env, _ = make_gym_env(env_id, 1, device="cpu", max_episode_steps=None, make_kwargs={})
    env.set_info_dict_reader(default_info_dict_reader(["extra"]))
    assert env._layout is None and "extra" in env.rollout(3).keys()
    env.close()


def test_transforms_compose_with_partial_resets_against_gymnasium():
    num_envs, steps = 3, 60
    # constant pushes end CartPole episodes every ~10 steps, at different steps per env
    actions = [[i % 2 for i in range(num_envs)] for _ in range(steps)]
    with GymEnvSimulator("CartPole-v1", num_envs=num_envs, seed=21) as sim:
        sim.env = TransformedEnv(sim.env, Compose(StepCounter(), RewardScaling(loc=0.5, scale=2.0)))
        data = sim.collect_steps(ScriptedPolicy(actions), num_steps=num_envs * steps)
    data = data.reshape(num_envs, steps)
    for i in range(num_envs):
        rows = raw_rollout("CartPole-v1", 21 + i, [a[i] for a in actions])
        assert sum(r[3] or r[4] for r in rows) >= 4  # several partial resets of this env
        scaled = [(o, a, 0.5 + 2.0 * r, te, tr, n) for o, a, r, te, tr, n in rows]
        assert_matches_raw(data[i], scaled)
        assert_continuity(data[i])
        # the step counter restarts with each episode of this env
        expected, count = [], 0
        for row in rows:
            count += 1
            expected.append(count)
            count = 0 if row[3] or row[4] else count
        assert data[i]["next", "step_count"].reshape(-1).tolist() == expected


def test_video_path_without_pillow_is_a_clear_error(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "PIL" else real_find_spec(name, *a, **k),
    )
    path = tmp_path / "eval.gif"
    with GymEnvSimulator("CartPole-v1", seed=0, max_episode_steps=5) as sim:
        with pytest.raises(ImportError, match="Pillow"):
            sim.evaluate(
                lambda obs: torch.zeros(len(obs), dtype=torch.long),
                render_args=dict(video_path=str(path)),
            )
    assert not path.exists()
