"""Bad inputs to the simulator's public API: each raises before any work, naming the argument.

One parametrized case per bad input (exception type + a message naming the argument);
the checks that no work was done (carried episodes, episodes run) are in
``test_simulator_hardening.py``.
"""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from grl_torchrl.rl_modules.simulator import (
    GymEnvSimulator,
    NumpyPolicyWrapper,
    evaluation_summary,
    make_gym_env,
    to_records,
)


class _SpacesEnv(gymnasium.Env):
    """A minimal env with the given spaces (observations sampled, episodes of 3 steps)."""

    metadata = {"render_modes": []}

    def __init__(self, observation_space, action_space):
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 1.0, False, False, {}


BOX = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
SPACES = {
    "GrlTupleAction-v0": (BOX, gymnasium.spaces.Tuple((gymnasium.spaces.Discrete(2), BOX))),
    "GrlTupleObs-v0": (gymnasium.spaces.Tuple((BOX, BOX)), gymnasium.spaces.Discrete(2)),
    "GrlShiftedDiscrete-v0": (BOX, gymnasium.spaces.Discrete(3, start=1)),
    "GrlDictTupleObs-v0": (
        gymnasium.spaces.Dict(a=BOX, b=gymnasium.spaces.Tuple((BOX,))),
        gymnasium.spaces.Discrete(2),
    ),
    "GrlMultiDiscrete-v0": (BOX, gymnasium.spaces.MultiDiscrete([3, 4])),
}
for _id, (_obs, _act) in SPACES.items():
    gymnasium.register(
        _id,
        entry_point=_SpacesEnv,
        max_episode_steps=3,
        kwargs=dict(observation_space=_obs, action_space=_act),
    )


def build(**kwargs):
    return lambda: GymEnvSimulator(**{"env_id": "CartPole-v1", **kwargs})


# ------------------------------------------------------------------ construction
CONSTRUCTION = {
    "env_id not a str": (build(env_id=3), TypeError, "env_id"),
    "env_id unknown": (build(env_id="NoSuchEnv-v0"), ValueError, "env_id"),
    "num_envs 0": (build(num_envs=0), ValueError, "num_envs"),
    "num_envs float": (build(num_envs=2.0), TypeError, "num_envs"),
    "seed -1": (build(seed=-1), ValueError, "seed"),
    "seed 2**64": (build(seed=2**64), ValueError, "seed"),
    "seed float": (build(seed=1.5), TypeError, "seed"),
    "seed str": (build(seed="0"), TypeError, "seed"),
    "seed bool": (build(seed=True), TypeError, "seed"),
    "device unparsable": (build(device="banana"), ValueError, "device"),
    "device missing": (build(device="cuda:99"), ValueError, "device"),
    "device int": (build(device=0), TypeError, "device"),
    "max_episode_steps 0": (build(max_episode_steps=0), ValueError, "max_episode_steps"),
    "double_to_float str": (build(double_to_float="yes"), TypeError, "double_to_float"),
    "Tuple action space": (build(env_id="GrlTupleAction-v0"), ValueError, "action space Tuple"),
    "Tuple observation space": (
        build(env_id="GrlTupleObs-v0"),
        ValueError,
        "observation space Tuple",
    ),
    "Tuple inside a Dict": (
        build(env_id="GrlDictTupleObs-v0"),
        ValueError,
        "observation space Dict.*entry Tuple",
    ),
    "Discrete(start=1)": (
        build(env_id="GrlShiftedDiscrete-v0"),
        ValueError,
        r"action space Discrete\(3, start=1\)",
    ),
    "make_gym_env device": (
        lambda: make_gym_env(
            "CartPole-v1", 1, device="banana", max_episode_steps=None, make_kwargs={}
        ),
        ValueError,
        "device",
    ),
    "make_gym_env make_kwargs": (
        lambda: make_gym_env(
            "CartPole-v1", 1, device="cpu", max_episode_steps=None, make_kwargs=None
        ),
        TypeError,
        "make_kwargs",
    ),
}


@pytest.mark.parametrize("case", list(CONSTRUCTION))
def test_bad_construction_arguments(case):
    make, error, match = CONSTRUCTION[case]
    with pytest.raises(error, match=match):
        make()


# ------------------------------------------------------------------ call arguments
def zeros_cartpole(obs):
    return torch.zeros(len(obs), dtype=torch.long)


CALLS = {
    "num_steps float": (
        lambda s: s.collect_steps(None, num_steps=2.5, random_policy=True),
        TypeError,
        "num_steps",
    ),
    "num_steps not a multiple": (
        lambda s: s.collect_steps(None, num_steps=3, random_policy=True),
        ValueError,
        "num_steps",
    ),
    "both counts": (
        lambda s: s.collect_steps(None, num_steps=2, num_episodes=1, random_policy=True),
        ValueError,
        "num_episodes",
    ),
    "random_policy str": (
        lambda s: s.collect_steps(None, num_steps=2, random_policy="yes"),
        TypeError,
        "random_policy",
    ),
    "policy not callable": (lambda s: s.collect_steps(42, num_steps=2), TypeError, "policy"),
    "policy None, num_episodes": (
        lambda s: s.collect_steps(None, num_episodes=1),
        TypeError,
        "policy",
    ),
    "collect_episodes random_policy int": (
        lambda s: s.collect_episodes(None, num_episodes=1, random_policy=1),
        TypeError,
        "random_policy",
    ),
    "collect_episodes num_steps -3": (
        lambda s: s.collect_episodes(zeros_cartpole, num_steps=-3),
        ValueError,
        "num_steps",
    ),
    "evaluate policy None": (lambda s: s.evaluate(None), TypeError, "policy"),
    "evaluate num_episodes float": (
        lambda s: s.evaluate(zeros_cartpole, num_episodes=1.5),
        TypeError,
        "num_episodes",
    ),
    "TensorDict policy reading a missing key": (
        lambda s: s.collect_steps(
            TensorDictModule(lambda x: x.argmax(-1), in_keys=["obs"], out_keys=["action"]),
            num_steps=2,
        ),
        ValueError,
        "obs",
    ),
}


@pytest.fixture(scope="module")
def cartpole2():
    with GymEnvSimulator("CartPole-v1", num_envs=2, seed=0) as sim:
        yield sim


@pytest.mark.parametrize("case", list(CALLS))
def test_bad_call_arguments(case, cartpole2):
    call, error, match = CALLS[case]
    with pytest.raises(error, match=match):
        call(cartpole2)


# ------------------------------------------------------------------ render_args
# "{tmp}" in a path stands for the test's temporary directory
RENDER_CASES = {
    "not a dict": ("eval.gif", TypeError, "render_args"),
    "unknown key": (dict(mode="human"), ValueError, "mode"),
    "missing directory": (
        dict(video_path="{tmp}/missing/eval.gif"),
        FileNotFoundError,
        "video_path",
    ),
    "not a .gif": (dict(video_path="{tmp}/eval.mp4"), ValueError, "video_path"),
    "path not a str": (dict(video_path=123), TypeError, "video_path"),
    "path is a directory": (dict(video_path="{tmp}/folder.gif"), IsADirectoryError, "video_path"),
    "fps nan": (dict(fps=math.nan), ValueError, "fps"),
    "fps inf": (dict(fps=math.inf), ValueError, "fps"),
    "fps 0": (dict(fps=0), ValueError, "fps"),
    "fps str": (dict(fps="30"), TypeError, "fps"),
    "fps bool": (dict(fps=True), TypeError, "fps"),
}


@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_bad_render_args_before_any_episode(case, tmp_path):
    render_args, error, match = RENDER_CASES[case]
    (tmp_path / "folder.gif").mkdir()
    if isinstance(render_args, dict) and isinstance(render_args.get("video_path"), str):
        render_args = dict(video_path=render_args["video_path"].format(tmp=tmp_path))
    calls = []

    def policy(obs):
        calls.append(1)
        return zeros_cartpole(obs)

    with GymEnvSimulator("CartPole-v1", seed=0, max_episode_steps=3) as sim:
        with pytest.raises(error, match=match):
            sim.evaluate(policy, render_args=render_args)
        assert not calls and "render" not in sim._runners  # no episode ran, no env was made


# ------------------------------------------------------------------ policy outputs
def cartpole(action):
    return "CartPole-v1", 1, lambda obs: action


def pendulum(action):
    return "Pendulum-v1", 1, lambda obs: action


ACTIONS = {
    "NaN continuous": (pendulum(torch.tensor([[math.nan]])), ValueError, "non-finite action"),
    "inf continuous": (pendulum(torch.tensor([[math.inf]])), ValueError, "non-finite action"),
    "bool continuous": (pendulum(torch.tensor([[True]])), TypeError, "action"),
    "float discrete": (cartpole(torch.tensor([0.7])), TypeError, "discrete"),
    "discrete above n": (cartpole(torch.tensor([5])), ValueError, r"action values \[5\]"),
    "discrete negative": (cartpole(torch.tensor([-1])), ValueError, r"action values \[-1\]"),
    "discrete, 2 envs": (
        ("CartPole-v1", 2, lambda obs: torch.tensor([0, 2])),
        ValueError,
        r"action values \[2\]",
    ),
    "MultiDiscrete above nvec": (
        ("GrlMultiDiscrete-v0", 1, lambda obs: torch.tensor([[2, 4]])),
        ValueError,
        r"action values \[4\]",
    ),
    "returns None": (cartpole(None), TypeError, "policy returned NoneType"),
    "returns a list of strings": (cartpole(["left"]), TypeError, "policy returned list"),
    "wrong shape": (pendulum(torch.zeros(1, 2)), ValueError, "action of shape"),
    "NumpyPolicyWrapper fn returns None": (
        ("CartPole-v1", 1, NumpyPolicyWrapper(lambda obs: None)),
        TypeError,
        "fn returned",
    ),
    "TensorDict policy writes no action": (
        (
            "CartPole-v1",
            1,
            TensorDictModule(lambda x: x, in_keys=["observation"], out_keys=["other"]),
        ),
        KeyError,
        "action",
    ),
}


@pytest.mark.parametrize("case", list(ACTIONS))
def test_bad_policy_actions_are_refused_before_stepping(case):
    (env_id, num_envs, policy), error, match = ACTIONS[case]
    with GymEnvSimulator(env_id, num_envs=num_envs, seed=0) as sim:
        first = sim.collect_steps(None, num_steps=num_envs, random_policy=True)
        with pytest.raises(error, match=match):
            sim.collect_steps(policy, num_steps=num_envs)
        # nothing was stepped: the next step starts where the last good one ended
        after = sim.collect_steps(None, num_steps=num_envs, random_policy=True)
    torch.testing.assert_close(after["observation"], first["next", "observation"])


# ------------------------------------------------------------------ helpers' inputs
def collected():
    with GymEnvSimulator("CartPole-v1", seed=0) as sim:
        return sim.collect_steps(None, num_steps=4, random_policy=True)


HELPERS = {
    "to_records list": (lambda: to_records([{"obs": 0}]), TypeError, "data"),
    "to_records None": (lambda: to_records(None), TypeError, "data"),
    "to_records 2-D batch": (lambda: to_records(collected().reshape(2, 2)), ValueError, "flat"),
    "to_records no reward": (
        lambda: to_records(collected().exclude(("next", "reward"))),
        ValueError,
        "reward",
    ),
    "to_records plain TensorDict": (
        lambda: to_records(TensorDict(x=torch.zeros(3), batch_size=[3])),
        ValueError,
        "action",
    ),
    "to_records obs_keys": (
        lambda: to_records(collected(), obs_keys=["nope"]),
        ValueError,
        "obs_keys",
    ),
    "to_records obs_keys int": (lambda: to_records(collected(), obs_keys=3), TypeError, "obs_keys"),
    "evaluation_summary dict": (
        lambda: evaluation_summary(dict(total_return=1.0, total_steps=2)),
        TypeError,
        "results",
    ),
    "evaluation_summary None": (lambda: evaluation_summary(None), TypeError, "results"),
    "evaluation_summary numbers": (
        lambda: evaluation_summary([1.0, 2.0]),
        TypeError,
        r"results\[0\]",
    ),
    "evaluation_summary missing key": (
        lambda: evaluation_summary([dict(total_return=1.0)]),
        ValueError,
        "total_steps",
    ),
    "evaluation_summary non-number": (
        lambda: evaluation_summary([dict(total_return="1", total_steps=2)]),
        TypeError,
        "total_return",
    ),
}


@pytest.mark.parametrize("case", list(HELPERS))
def test_bad_helper_inputs(case):
    call, error, match = HELPERS[case]
    with pytest.raises(error, match=match):
        call()
