"""Bad inputs to the collectors and the simulator's policies, and the pinned torch in the docs.

Each error is raised before any work (no worker process, no Ray runtime, no env step) and
names the argument. The Ray noise test lives in test_collectors_ray.py.
"""

from __future__ import annotations

import copy
import pickle
import re
from pathlib import Path

import pytest
import torch
from tensordict.nn import TensorDictModule
from test_collectors import descendants
from test_simulator import assert_matches_raw, raw_rollout
from torch import nn

from grl_torchrl.rl_modules import CollectorWorkerError, GymEnvSimulator, make_collector
from grl_torchrl.rl_modules.collectors import factory

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------- make_collector: policy and env keywords
class Started(Exception):
    """Raised by the stand-in for TorchRL's collector: the checks let the call through."""


@pytest.fixture
def no_start(monkeypatch):
    """Records every attempt to build TorchRL's collector (workers, Ray) instead of running it."""
    started = []

    def record(backend):
        def start(*args, **kwargs):
            started.append(backend)
            raise Started

        return start

    monkeypatch.setattr(factory, "Collector", record("process"))
    monkeypatch.setattr(factory, "_make_ray_collector", record("ray"))
    return started


def policy_reading(key: str, out: str = "action") -> TensorDictModule:
    return TensorDictModule(nn.Linear(3, 1), in_keys=[key], out_keys=[out])


BAD_COLLECTOR_INPUTS = {
    "policy is a string": (
        dict(policy="my_actor"),
        TypeError,
        r"policy must be a TensorDict module .* got str 'my_actor'",
    ),
    "policy is a number": (dict(policy=3), TypeError, "policy must be .* got int 3"),
    "unknown gymnasium keyword": (
        dict(gravity=9.8),
        TypeError,
        r"'Pendulum-v1' does not take the keyword arguments \['gravity'\].*gravity",
    ),
    "policy reads a key the env lacks": (
        dict(policy=policy_reading("obs")),
        ValueError,
        r"policy reads \['obs'\], which the env does not provide",
    ),
    "policy writes no action": (
        dict(policy=policy_reading("observation", out="act")),
        ValueError,
        r"policy does not write the env's action entry \['action'\]; its out_keys are \['act'\]",
    ),
}


@pytest.mark.parametrize("backend", ["process", "ray"])
@pytest.mark.parametrize("case", list(BAD_COLLECTOR_INPUTS))
def test_bad_policy_and_env_keywords_raise_before_any_worker_starts(case, backend, no_start):
    kwargs, error, match = BAD_COLLECTOR_INPUTS[case]
    args = dict(policy=None, num_workers=2, frames_per_batch=4, backend=backend) | kwargs
    with pytest.raises(error, match=match):
        make_collector("Pendulum-v1", **args)
    assert no_start == []  # neither TorchRL's collector nor Ray was started
    assert not descendants()


def test_good_policy_and_keywords_reach_the_collector(no_start):
    # the checks above refuse only what is wrong: a keyword Pendulum takes (g) and a policy
    # reading the env's observation go through to TorchRL's collector
    policy = policy_reading("observation")
    with pytest.raises(Started):
        make_collector("Pendulum-v1", policy, num_workers=1, frames_per_batch=4, g=9.81)
    assert no_start == ["process"]


# ------------------------------------------------------------------ closed collectors
def test_iterating_a_closed_collector_says_it_is_closed():
    collector = make_collector("Pendulum-v1", None, num_workers=1, frames_per_batch=4)
    batches = iter(collector)
    next(batches)
    collector.close()
    assert not descendants()
    # the iterator that was running, and a new one
    with pytest.raises(RuntimeError, match=r"collector \(ManagedMultiSyncCollector\) is closed"):
        next(batches)
    with pytest.raises(RuntimeError, match="is closed") as info:
        for _ in collector:
            pass
    assert "exit code" not in str(info.value)


# ------------------------------------------------------------------ CollectorWorkerError
ERRORS = {
    "with traceback": (1, "KeyError", "'obs'", "Traceback: ...KeyError"),
    "unknown worker": (None, "RayActorError", "the actor died"),
}
COPIES = {"pickle": lambda err: pickle.loads(pickle.dumps(err)), "deepcopy": copy.deepcopy}


@pytest.mark.parametrize("how", list(COPIES))
@pytest.mark.parametrize("case", list(ERRORS))
def test_collector_worker_error_round_trips(case, how):
    err = CollectorWorkerError(*ERRORS[case])
    err.note = "extra attribute"
    copied = COPIES[how](err)
    assert type(copied) is CollectorWorkerError and copied is not err
    assert str(copied) == str(err) and copied.args == err.args
    fields = ("worker", "type_name", "message", "remote_traceback", "note")
    assert [getattr(copied, f) for f in fields] == [getattr(err, f) for f in fields]


# ------------------------------------------------------------------ list actions
def test_callable_policy_may_return_a_python_list():
    # upstream GenerativeRL handed the policy's return value to env.step, which takes lists
    actions = [[[0.25]], [[-1.5]], [[2.0]], [[0.0]], [[1]]]  # the last one a list of ints
    calls = iter(actions)
    with GymEnvSimulator("Pendulum-v1", seed=3) as sim:
        data = sim.collect_steps(lambda obs: next(calls), num_steps=len(actions))
    assert data["action"].dtype == torch.float32
    assert_matches_raw(data, raw_rollout("Pendulum-v1", 3, [a[0] for a in actions]))


def test_callable_policy_list_actions_on_two_discrete_envs():
    # sub-env i of a seeded vector env steps like gymnasium's reset(seed=seed + i)
    actions = [[1, 0], [0, 0], [1, 1], [0, 1]]
    calls = iter(actions)
    with GymEnvSimulator("CartPole-v1", num_envs=2, seed=5) as sim:
        data = sim.collect_steps(lambda obs: next(calls), num_steps=2 * len(actions))
    for i in range(2):
        rows = raw_rollout("CartPole-v1", 5 + i, [a[i] for a in actions])
        assert_matches_raw(data[i * len(actions) : (i + 1) * len(actions)], rows)


@pytest.mark.parametrize(
    ("returned", "error", "match"),
    [
        (["left"], TypeError, r"policy returned list \['left'\]"),
        ([[0.1], [0.2, 0.3]], TypeError, "policy returned list"),  # ragged
        ([[0.1, 0.2]], ValueError, r"action of shape \(1, 2\)"),  # np.asarray-able, bad shape
        ([[float("nan")]], ValueError, "non-finite action"),
    ],
    ids=["strings", "ragged", "wrong-shape", "nan"],
)
def test_bad_list_actions_are_refused_before_stepping(returned, error, match):
    with GymEnvSimulator("Pendulum-v1", seed=0) as sim:
        first = sim.collect_steps(None, num_steps=1, random_policy=True)
        with pytest.raises(error, match=match):
            sim.collect_steps(lambda obs: returned, num_steps=1)
        after = sim.collect_steps(None, num_steps=1, random_policy=True)
    torch.testing.assert_close(after["observation"], first["next", "observation"])


# ------------------------------------------------------------------ docs: the torch pin
def test_docs_name_the_makefiles_torch_pin():
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r"^TORCH_PIN \?= torch==(\S+)$", makefile, re.M).group(1)
    quickstart = (ROOT / "docs" / "quickstart.rst").read_text()
    readme = (ROOT / "README.md").read_text()
    for name, text in {"docs/quickstart.rst": quickstart, "README.md": readme}.items():
        named = re.findall(r"torch==([0-9][0-9.]*[0-9])", text)
        assert named and set(named) == {pin}, (name, named, pin)
    installs = re.findall(r"installs torch ([0-9][0-9.]*[0-9])", quickstart)
    assert installs == [pin]
