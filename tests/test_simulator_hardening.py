"""Issue 9 behaviours of the simulator, against independent gymnasium computations.

Actions are validated and clipped before stepping; a failed call does no work (carried
episodes kept, ids never reused); Dict / MultiDiscrete / MultiBinary spaces; float32
observations from float64 envs; headless rendering (MuJoCo, SDL signals); unbatched
actions with ``num_envs=1``; ``collect_episodes(random_policy=True)``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import gymnasium
import numpy as np
import pytest
import torch
from tensordict import TensorDictBase

from grl_torchrl.rl_modules.simulator import (
    EVAL_SEED_OFFSET,
    GymEnvSimulator,
    NumpyPolicyWrapper,
    to_records,
)


class ScriptedPolicy:
    """Batched callable replaying a fixed action sequence (optionally raising at a step)."""

    def __init__(self, actions, raise_at=None):
        self.actions = [torch.as_tensor(a) for a in actions]
        self.t = 0
        self.raise_at = raise_at

    def __call__(self, obs):
        if self.t == self.raise_at:
            self.raise_at = None
            raise RuntimeError("policy failure")
        action = self.actions[self.t]
        self.t += 1
        return action


def raw_rollout(env_id, seed, actions, **make_kwargs):
    """Independent gymnasium loop: reset(seed) once, reset() after each end."""
    env = gymnasium.make(env_id, **make_kwargs)
    obs, _ = env.reset(seed=seed)
    rows = []
    for action in actions:
        next_obs, reward, terminated, truncated, _ = env.step(np.asarray(action))
        rows.append((obs, reward, terminated or truncated, next_obs))
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    return rows


# ------------------------------------------------------------------ point 5: actions
def test_out_of_bounds_continuous_actions_are_stored_clipped():
    """The rule: Box actions are clipped to the bounds before stepping, and the stored
    action is the clipped one, which is what Pendulum applies to the raw action."""
    raw_actions = [[5.0 * float(np.sin(0.4 * t))] for t in range(40)]  # up to 2.5x the bound
    rows = raw_rollout("Pendulum-v1", 3, raw_actions)  # gymnasium gets the raw actions
    with GymEnvSimulator("Pendulum-v1", seed=3) as sim:
        data = sim.collect_steps(ScriptedPolicy([[a] for a in raw_actions]), num_steps=40)
    expected = torch.tensor(np.clip(raw_actions, -2.0, 2.0), dtype=torch.float32)
    assert (expected.abs() == 2.0).sum() >= 10  # many actions were out of bounds
    torch.testing.assert_close(data["action"], expected)
    for i, (obs, reward, _, next_obs) in enumerate(rows):
        torch.testing.assert_close(data["observation"][i], torch.as_tensor(obs))
        torch.testing.assert_close(data["next", "observation"][i], torch.as_tensor(next_obs))
        assert data["next", "reward"][i].item() == pytest.approx(reward, abs=1e-5)


def test_int_actions_for_a_box_are_cast_and_bool_discrete_refused():
    with GymEnvSimulator("Pendulum-v1", seed=0) as sim:
        data = sim.collect_steps(lambda obs: torch.ones(1, 1, dtype=torch.long), num_steps=2)
    assert data["action"].dtype == torch.float32 and data["action"].tolist() == [[1.0], [1.0]]
    with GymEnvSimulator("CartPole-v1", seed=0) as sim:
        with pytest.raises(TypeError, match="discrete"):
            sim.collect_steps(lambda obs: torch.ones(1, dtype=torch.bool), num_steps=1)


def test_nan_action_mid_call_is_refused_before_the_env_steps_it():
    actions = [[[0.5]]] * 5 + [[[float("nan")]]]
    with GymEnvSimulator("Pendulum-v1", seed=1) as sim:
        with pytest.raises(ValueError, match="non-finite action"):
            sim.collect_steps(ScriptedPolicy(actions), num_steps=8)
        # the 5 good steps ran; the NaN one never reached the env, whose state is finite
        after = sim.collect_steps(lambda obs: torch.full((1, 1), 0.5), num_steps=3)
    rows = raw_rollout("Pendulum-v1", 1, [[0.5]] * 8)
    assert torch.isfinite(after["observation"]).all()
    for i, (obs, _, _, _) in enumerate(rows[5:]):
        torch.testing.assert_close(after["observation"][i], torch.as_tensor(obs))


# --------------------------------------------------------- point 6: no work before errors
def test_bad_argument_leaves_the_carried_episode_alone():
    with (
        GymEnvSimulator("CartPole-v1", seed=5) as sim,
        GymEnvSimulator("CartPole-v1", seed=5) as twin,
    ):
        policy = lambda obs: (obs[:, 2] > 0).long()  # noqa: E731
        before = sim.collect_steps(policy, num_steps=4)
        with pytest.raises(TypeError, match="policy"):
            sim.collect_steps(None, num_episodes=1)
        with pytest.raises(TypeError, match="random_policy"):
            sim.collect_steps(policy, num_episodes=1, random_policy="no")
        with pytest.raises(TypeError, match="policy"):
            sim.collect_episodes(object(), num_episodes=1)
        with pytest.raises(TypeError, match="policy"):
            sim.evaluate(None)
        after = sim.collect_steps(policy, num_steps=4)
        reference = twin.collect_steps(policy, num_steps=8)
    assert (torch.cat([before, after]) == reference).all()
    assert after["collector", "traj_ids"].tolist() == [0] * 4  # the same episode continues


def test_traj_ids_are_not_reused_after_a_policy_raises():
    actions = [[1]] * 100  # constant pushes: CartPole episodes end every ~9 steps
    rows = raw_rollout("CartPole-v1", 2, [a[0] for a in actions])
    ends = [t for t, row in enumerate(rows) if row[2]]
    assert any(20 <= t < 30 for t in ends)  # an episode ends inside the failed stretch
    with GymEnvSimulator("CartPole-v1", seed=2) as sim:
        policy = ScriptedPolicy(actions, raise_at=30)
        first = sim.collect_steps(policy, num_steps=20)
        with pytest.raises(RuntimeError, match="policy failure"):
            sim.collect_steps(policy, num_steps=20)  # steps 20..29 ran, then the policy raised
        second = sim.collect_steps(policy, num_steps=40)
    first_ids, second_ids = first["collector", "traj_ids"], second["collector", "traj_ids"]
    assert not set(first_ids.tolist()) & set(second_ids.tolist())
    assert len(first_ids.unique()) == 3 and len(second_ids.unique()) == 1 + sum(
        30 <= t < 70 for t in ends
    )
    # the data itself continues where the env stopped: steps 30.. of the same sequence
    for i, (obs, _, done, _) in enumerate(rows[30:70]):
        torch.testing.assert_close(second["observation"][i], torch.as_tensor(obs))
        assert bool(second["next", "done"][i]) == done


# ------------------------------------------------------------------ point 7: rendering
def test_sigterm_still_terminates_after_rendering():
    script = textwrap.dedent(
        """
        import time, torch
        from grl_torchrl.rl_modules.simulator import GymEnvSimulator
        sim = GymEnvSimulator("CartPole-v1", seed=0, max_episode_steps=3)
        sim.evaluate(lambda obs: torch.zeros(len(obs), dtype=torch.long), render_args={})
        print("rendered", flush=True)
        time.sleep(120)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_NO_SIGNAL_HANDLERS",)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "rendered"
        proc.send_signal(signal.SIGTERM)
        # SDL's handler would swallow SIGTERM and leave the child sleeping its 120 s
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_headless_mujoco_rendering(monkeypatch):
    for name in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    with GymEnvSimulator("Hopper-v5", seed=0, max_episode_steps=1) as sim:
        results = sim.evaluate(lambda obs: torch.zeros(1, 3), render_args={})
    frames = results[0]["render_output"]
    assert os.environ["MUJOCO_GL"] == "egl"
    assert frames.shape == (2, 480, 480, 3) and frames.dtype == np.uint8
    assert frames.std() > 0  # a real image, not a blank buffer


# -------------------------------------------------------------------- point 8: seeds
def test_numpy_integer_seed_is_the_same_seed():
    with (
        GymEnvSimulator("Pendulum-v1", seed=np.int64(4)) as a,
        GymEnvSimulator("Pendulum-v1", seed=4) as b,
    ):
        assert a.seed == 4 and type(a.seed) is int
        da = a.collect_steps(None, num_steps=5, random_policy=True)
        db = b.collect_steps(None, num_steps=5, random_policy=True)
    assert (da == db).all()


# ------------------------------------------------------------------ point 9: spaces
class DictEnv(gymnasium.Env):
    """Dict observations (position, velocity, a discrete mode); Discrete(3) actions that
    move the position; ends after 4 steps."""

    observation_space = gymnasium.spaces.Dict(
        pos=gymnasium.spaces.Box(-10, 10, (2,), np.float32),
        vel=gymnasium.spaces.Box(-1, 1, (1,), np.float64),
        mode=gymnasium.spaces.Discrete(4),
    )
    action_space = gymnasium.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.t = 0
        return self._obs(0), {}

    def _obs(self, action):
        return dict(pos=self.pos.copy(), vel=np.array([action - 1.0]), mode=int(self.t % 4))

    def step(self, action):
        self.t += 1
        self.pos = self.pos + np.float32(int(action) - 1)
        return self._obs(action), float(self.pos.sum()), self.t >= 4, False, {}


gymnasium.register("GrlDict-v0", entry_point=DictEnv)


def test_dict_observations_reach_the_policy_whole():
    seen = []

    def policy(obs):
        seen.append(obs.clone())
        return (obs["mode"] % 3).long()

    with GymEnvSimulator("GrlDict-v0", num_envs=2, seed=0) as sim:
        data = sim.collect_steps(policy, num_steps=10)
        upstream = sim.collect_steps(
            NumpyPolicyWrapper(lambda obs: int(obs["mode"]) % 3), num_steps=10
        )
    assert isinstance(seen[0], TensorDictBase) and seen[0].batch_size == (2,)
    assert set(seen[0].keys()) == {"pos", "vel", "mode"}
    assert seen[0]["vel"].dtype == torch.float32  # float64 entry -> float32
    assert (data["action"] == data["mode"] % 3).all()
    assert (upstream["action"] == upstream["mode"] % 3).all()
    # against the env itself: same seed, same actions
    for i in range(2):
        env = DictEnv()
        obs, _ = env.reset(seed=i)
        for t in range(5):
            row = data.reshape(2, 5)[i, t]
            torch.testing.assert_close(row["pos"], torch.as_tensor(obs["pos"]))
            assert int(row["mode"]) == obs["mode"]
            obs, reward, terminated, _, _ = env.step(int(row["action"]))
            assert row["next", "reward"].item() == pytest.approx(reward)
            if terminated:
                obs, _ = env.reset()
    records = to_records(data)
    assert set(records[0]["obs"]) == {"pos", "vel", "mode"}
    torch.testing.assert_close(records[3]["next_obs"]["pos"], data["next", "pos"][3])
    assert records[3]["action"] == data["action"][3]
    only_pos = to_records(data, obs_keys="pos")
    torch.testing.assert_close(only_pos[0]["obs"], data["pos"][0])
    two = to_records(data, obs_keys=["pos", "mode"])
    assert set(two[0]["next_obs"]) == {"pos", "mode"} and two[0]["obs"]["mode"] == data["mode"][0]


class RecordingEnv(gymnasium.Env):
    """Records the actions it receives; observation = the step count."""

    observation_space = gymnasium.spaces.Box(0, 100, (1,), np.float32)

    def __init__(self, action_space):
        self.action_space = action_space
        self.received = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, self.action_space.dtype))
        self.received.append(np.array(action))
        self.t += 1
        return np.full(1, self.t, np.float32), 0.0, False, self.t >= 5, {}


@pytest.mark.parametrize(
    "space", [gymnasium.spaces.MultiDiscrete([3, 4]), gymnasium.spaces.MultiBinary(3)]
)
def test_multidiscrete_and_multibinary_actions(space):
    env_id = f"GrlRecording{type(space).__name__}-v0"
    gymnasium.register(env_id, entry_point=RecordingEnv, kwargs=dict(action_space=space))
    with GymEnvSimulator(env_id, seed=0) as sim:
        random = sim.collect_steps(None, num_steps=40, random_policy=True)
        received = np.stack(sim._gym_envs["steps"].unwrapped.received)
        chosen = torch.as_tensor(space.sample(), dtype=torch.long)
        scripted = sim.collect_steps(lambda obs: chosen[None], num_steps=3)
        sent = np.stack(sim._gym_envs["steps"].unwrapped.received[-3:])
    assert (scripted["action"] == chosen).all()
    assert random["action"].shape == (40, *space.shape)
    np.testing.assert_array_equal(received, random["action"].numpy())
    high = space.nvec - 1 if hasattr(space, "nvec") else np.ones(space.shape)
    assert (random["action"].numpy() <= high).all() and (random["action"] >= 0).all()
    assert (random["action"].numpy() == high).any()  # the whole range is sampled
    np.testing.assert_array_equal(sent, np.stack([chosen.numpy()] * 3))


# ------------------------------------------------------------------ point 10: friction
class Float64Env(gymnasium.Env):
    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    action_space = gymnasium.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.normal(size=3) * 1e-3 + 1 / 3
        return self.state.copy(), {}

    def step(self, action):
        self.state = self.state + float(action[0]) / 7
        return self.state.copy(), 0.0, False, False, {}


gymnasium.register("GrlFloat64-v0", entry_point=Float64Env, max_episode_steps=6)


@pytest.mark.parametrize("num_envs", [1, 2])
def test_float64_observations_come_out_float32(num_envs):
    policy = lambda obs: torch.full((len(obs), 1), 0.5)  # noqa: E731
    with (
        GymEnvSimulator("GrlFloat64-v0", num_envs=num_envs, seed=0) as sim,
        GymEnvSimulator("GrlFloat64-v0", num_envs=num_envs, seed=0, double_to_float=False) as raw,
    ):
        data = sim.collect_steps(policy, num_steps=8 * num_envs)
        episodes = sim.collect_episodes(policy, num_episodes=num_envs)
        data64 = raw.collect_steps(policy, num_steps=8 * num_envs)
    assert sim.env.observation_spec["observation"].dtype == torch.float32
    for td in (data, episodes):
        assert td["observation"].dtype == td["next", "observation"].dtype == torch.float32
    assert data64["observation"].dtype == torch.float64
    torch.testing.assert_close(data["observation"], data64["observation"].float())
    torch.testing.assert_close(data["next", "observation"], data64["next", "observation"].float())
    # a float32 network takes them as they come
    net = torch.nn.Linear(3, 1)
    assert net(data["observation"]).shape == (8 * num_envs, 1)


def test_mujoco_observations_are_float32_and_match_gymnasium():
    actions = [np.full(6, 0.3 * (-1) ** t, np.float32) for t in range(5)]
    env = gymnasium.make("HalfCheetah-v5")
    obs, _ = env.reset(seed=7)
    expected = [obs]
    for action in actions:
        expected.append(env.step(action)[0])
    env.close()
    with GymEnvSimulator("HalfCheetah-v5", seed=7) as sim:
        data = sim.collect_steps(ScriptedPolicy([a[None] for a in actions]), num_steps=5)
    assert data["observation"].dtype == torch.float32
    torch.testing.assert_close(data["observation"], torch.as_tensor(np.stack(expected[:5])).float())


def test_unbatched_actions_with_one_env():
    with (
        GymEnvSimulator("Pendulum-v1", seed=0) as sim,
        GymEnvSimulator("Pendulum-v1", seed=0) as twin,
    ):
        unbatched = sim.collect_steps(lambda obs: -obs[0, 2:], num_steps=6)  # [1]
        batched = twin.collect_steps(lambda obs: -obs[:, 2:], num_steps=6)  # [1, 1]
    assert (unbatched == batched).all()
    with (
        GymEnvSimulator("CartPole-v1", seed=0) as sim,
        GymEnvSimulator("CartPole-v1", seed=0) as twin,
    ):
        scalar = sim.collect_steps(lambda obs: (obs[0, 2] > 0).long(), num_steps=6)  # []
        batched = twin.collect_steps(lambda obs: (obs[:, 2] > 0).long(), num_steps=6)  # [1]
        numpy_scalar = sim.evaluate(lambda obs: np.int64(0))[0]["data_list"]
    assert (scalar == batched).all()
    assert (numpy_scalar["action"] == 0).all()
    with GymEnvSimulator("CartPole-v1", num_envs=2, seed=0) as sim:
        with pytest.raises(ValueError, match="action of shape"):  # only num_envs=1
            sim.collect_steps(lambda obs: torch.tensor(0), num_steps=2)


def test_collect_episodes_random_policy():
    def run():
        with GymEnvSimulator("CartPole-v1", num_envs=2, seed=3) as sim:
            return sim.collect_episodes(None, num_episodes=4, random_policy=True)

    data, again = run(), run()
    assert (data == again).all()  # seeded
    done = data["next", "done"].reshape(-1)
    assert int(done.sum()) == 4 and bool(done[-1])
    assert set(data["action"].tolist()) == {0, 1}
    # the first episode is env 0's, from its seeded reset: replay its stored actions
    length = int(done.nonzero()[0]) + 1
    rows = raw_rollout("CartPole-v1", 3 + EVAL_SEED_OFFSET, data["action"][:length].tolist())
    for i, (obs, _, ended, _) in enumerate(rows):
        torch.testing.assert_close(data["observation"][i], torch.as_tensor(obs))
        assert bool(done[i]) == ended
