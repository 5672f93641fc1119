"""examples/idql_offline.py: smoke run and reload, K-candidate selection, the hand-written DDPM.

The learning goal itself (IDQL above the dataset's best behaviour policy and the K = 1
diffusion policy) is checked by running the example with its defaults, not here.
"""

from __future__ import annotations

import doctest
import importlib
import math
import sys
from pathlib import Path

import pytest
import torch
from easydict import EasyDict
from tensordict import TensorDict
from torchrl.data import LazyMemmapStorage, TensorDictReplayBuffer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_SMOKE = [
    "behaviour_sac_steps=200",
    "random_episodes=1",
    "behaviour_episodes=1",
    "controller_episodes=1",
    "eval_episodes=2",
]
IDQL_SMOKE = [
    *DATA_SMOKE,
    "train_steps=60",
    "batch_size=32",
    "hidden_size=32",
    "eval_every=30",
    "diffusion_steps=3",
    "num_candidates=4",
]


@pytest.fixture(scope="module")
def examples():
    sys.path.insert(0, str(EXAMPLES))
    threads = torch.get_num_threads()  # the examples set their own; give it back afterwards
    try:
        yield {name: importlib.import_module(name) for name in ("idql_offline", "offline_data")}
    finally:
        sys.path.remove(str(EXAMPLES))
        torch.set_num_threads(threads)


def _critic(idql, seed=0, obs_dim=3, act_dim=1):
    torch.manual_seed(seed)
    return idql.build_critic(EasyDict(hidden_size=16), obs_dim, act_dim)[0]


def _load_dataset(path: Path, size: int) -> TensorDict:
    buffer = TensorDictReplayBuffer(storage=LazyMemmapStorage(size))
    buffer.loads(path)
    return buffer[:]


def test_idql_smoke_reload_and_same_data_as_iql(examples, tmp_path, capsys):
    idql = examples["idql_offline"]
    result = idql.main([*IDQL_SMOKE, f"out_dir={tmp_path / 'idql'}"])
    out_dir = tmp_path / "idql"
    assert out_dir.joinpath("learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("IDQL Pendulum-v1 seed=0: IDQL (K=4, temperature 1) ")
    assert f"{result['return_mean']:.1f} ± {result['return_std']:.1f}" in line
    assert f"diffusion K=1 {result['k1_return_mean']:.1f}" in line
    assert f"({result['best_behaviour']})" in line and "600 transitions" in line
    # evaluations at 30 and 60 steps, for IDQL and for K=1; the last one is the result
    for tag in ("idql", "k1"):
        rows = (out_dir / "logs" / "scalars" / "eval" / f"{tag}_return_mean.csv").read_text()
        steps = [int(row.split(",")[0]) for row in rows.splitlines()]
        assert steps == [30, 60]
    last = float(rows.splitlines()[-1].split(",")[1])
    assert last == pytest.approx(result["k1_return_mean"])
    assert set(result["behaviour_returns"]) == {"random", "sac", "controller"}

    # The checkpoint rebuilds the same networks.
    ckpt = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    cfg = EasyDict(ckpt["config"])
    spec = result["diffusion"]
    q, v = idql.build_critic(cfg, 3, 1)
    q_target, _ = idql.build_critic(cfg, 3, 1)
    diffusion = idql.DiffusionBehaviour(
        3, 1, spec.low, spec.high, steps=3, hidden_size=32, time_embed_dim=cfg.time_embed_dim
    )
    obs, act = torch.randn(16, 3), torch.rand(16, 1) * 4 - 2
    assert not torch.allclose(q(act, obs), result["critic"](act, obs))  # fresh init differs
    q.load_state_dict(ckpt["critic"])
    q_target.load_state_dict(ckpt["critic_target"])
    v.load_state_dict(ckpt["value"])
    diffusion.load_state_dict(ckpt["diffusion"])
    torch.testing.assert_close(q(act, obs), result["critic"](act, obs))
    torch.testing.assert_close(q_target(act, obs), result["critic_target"](act, obs))
    torch.testing.assert_close(v(obs), result["value"](obs))
    t = torch.randint(3, (16,))
    torch.testing.assert_close(
        diffusion.predict_noise(act / 2, t, obs), result["diffusion"].predict_noise(act / 2, t, obs)
    )
    # The target critic trails the trained one (Polyak), and both moved from the init.
    assert not torch.allclose(q(act, obs), q_target(act, obs))

    # Evaluation draws from its own generator: evaluating differently trains the same networks.
    other = idql.main(
        [*IDQL_SMOKE, "eval_every=60", "num_candidates=2", f"out_dir={tmp_path / 'idql2'}"]
    )
    t = torch.randint(3, (16,))
    torch.testing.assert_close(other["critic"](act, obs), q(act, obs), rtol=0, atol=0)
    torch.testing.assert_close(other["value"](obs), v(obs), rtol=0, atol=0)
    torch.testing.assert_close(
        other["diffusion"].predict_noise(act / 2, t, obs),
        diffusion.predict_noise(act / 2, t, obs),
        rtol=0,
        atol=0,
    )

    # iql_offline.py with the same dataset settings trains on the very same data.
    iql = importlib.import_module("iql_offline")
    iql_args = ["train_steps=1", "batch_size=8", "hidden_size=8", "eval_every=1"]
    iql.main([*DATA_SMOKE, *iql_args, f"out_dir={tmp_path / 'iql'}"])
    ours = _load_dataset(out_dir / "dataset", 600)
    theirs = _load_dataset(tmp_path / "iql" / "dataset", 600)
    assert ours.shape == theirs.shape == torch.Size([600])
    assert (ours == theirs).all()
    assert ours["behaviour"].unique().tolist() == [0, 1, 2]


def _loop_argmax(critic, obs, candidates):
    """For each state, the candidate of highest min(q1, q2), one (state, action) at a time."""
    chosen, values = [], []
    for s, cands in zip(obs, candidates, strict=True):
        q_row = []
        for a in cands:
            q1 = critic.model.q1(a[None], s[None]).item()
            q2 = critic.model.q2(a[None], s[None]).item()
            q_row.append(min(q1, q2))
        values.append(q_row)
        chosen.append(cands[max(range(len(q_row)), key=q_row.__getitem__)])
    return torch.stack(chosen), torch.tensor(values)


@pytest.mark.parametrize("temperature", [0.0, 1e-6])
def test_selection_picks_the_argmax_q_candidate(examples, temperature):
    idql = examples["idql_offline"]
    critic = _critic(idql)
    draws = []

    def sampler(obs):  # uniform candidates in [-2, 2]; records what it was asked for
        draws.append(obs)
        return torch.rand(len(obs), 1) * 4 - 2

    policy = idql.IDQLPolicy(sampler, critic, 8, temperature, return_candidates=True)
    obs = torch.randn(6, 3)
    with torch.no_grad():
        td = policy(TensorDict({"observation": obs}, [6]))
    # one sampler call on B * K rows, state b repeated K times
    assert len(draws) == 1
    torch.testing.assert_close(draws[0], obs.repeat_interleave(8, 0))
    expected, q_values = _loop_argmax(critic, obs, td["candidate_action"])
    torch.testing.assert_close(td["candidate_q"], q_values)
    torch.testing.assert_close(td["action"], expected, rtol=0, atol=0)
    assert td["action"].shape == (6, 1) and td["candidate_action"].shape == (6, 8, 1)


def test_selection_keeps_leading_dims_and_unbatched_input(examples):
    idql = examples["idql_offline"]
    critic = _critic(idql)
    policy = idql.IDQLPolicy(
        lambda o: o[:, :1].tanh() * 2 + 0.1 * torch.randn(len(o), 1), critic, 5
    )
    obs = torch.randn(2, 3, 3)
    torch.manual_seed(1)
    with torch.no_grad():
        batched = policy(TensorDict({"observation": obs}, [2, 3]))["action"]
        torch.manual_seed(1)
        flat = policy(TensorDict({"observation": obs.reshape(6, 3)}, [6]))["action"]
        single = policy(TensorDict({"observation": obs[0, 0]}, []))["action"]
    assert batched.shape == (2, 3, 1) and single.shape == (1,)
    torch.testing.assert_close(batched.reshape(6, 1), flat)


class _FixedQ:
    """A stand-in critic: Q of candidate k is q[k], whatever the state."""

    def __init__(self, q):
        self.q = torch.tensor(q)

    def compute_mininum_q(self, action, state):
        assert action.shape[:2] == state.shape[:2]
        return self.q.expand(action.shape[:2]).unsqueeze(-1)


def test_temperature_samples_from_softmax_q(examples):
    idql = examples["idql_offline"]
    q = [0.0, 1.0, 2.0]
    sampler = lambda obs: torch.arange(3.0).repeat(len(obs) // 3).unsqueeze(-1)  # noqa: E731
    torch.manual_seed(0)
    n = 20_000
    for temperature in (1.0, 2.0):
        policy = idql.IDQLPolicy(sampler, _FixedQ(q), 3, temperature)
        actions = policy(TensorDict({"observation": torch.zeros(n, 3)}, [n]))["action"]
        freq = torch.bincount(actions.flatten().long(), minlength=3) / n
        expected = torch.softmax(torch.tensor(q) / temperature, 0)
        torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_candidates=0), ValueError, "num_candidates must be >= 1, got 0"),
        (dict(num_candidates=2.0), TypeError, "num_candidates must be an int, got 2.0"),
        (dict(num_candidates=True), TypeError, "num_candidates must be an int"),
        (dict(temperature=-0.1), ValueError, "temperature must be a finite number >= 0"),
        (dict(temperature=math.inf), ValueError, "temperature must be a finite number >= 0"),
        (dict(critic=object()), TypeError, "critic must have compute_mininum_q"),
        (dict(sampler=None), TypeError, "sampler must be callable, got NoneType"),
    ],
)
def test_policy_rejects_bad_arguments(examples, kwargs, error, match):
    idql = examples["idql_offline"]
    args = dict(sampler=lambda o: o[:, :1], critic=_critic(idql), num_candidates=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        idql.IDQLPolicy(**args)


def _diffusion(idql, steps=10):
    return idql.DiffusionBehaviour(
        3, 1, -2 * torch.ones(1), 2 * torch.ones(1), steps=steps, hidden_size=32, time_embed_dim=8
    )


def test_diffusion_schedule_is_the_vp_discretisation(examples):
    idql = examples["idql_offline"]
    model = _diffusion(idql, steps=5)
    # alpha_bar_t = exp(-integral_0^{t/T} beta(s) ds) with beta(s) = 0.1 + 9.9 s
    s = torch.arange(1, 6) / 5
    alpha_bar = torch.exp(-(0.1 * s + 9.9 * s**2 / 2))
    torch.testing.assert_close(model.sqrt_alpha_bar**2, alpha_bar)
    torch.testing.assert_close(model.sqrt_one_minus_alpha_bar**2, 1 - alpha_bar)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        _diffusion(idql, steps=0)


def test_diffusion_sampler_with_the_exact_noise_returns_the_data_point(examples):
    """With one data point x0, the ideal noise prediction is (x_t - sqrt(ab) x0) / sqrt(1 - ab);
    the ancestral sampler must then end exactly on x0 (mapped back to the action bounds)."""
    idql = examples["idql_offline"]
    model = _diffusion(idql)
    x0 = torch.tensor([[0.3], [-0.8], [0.95]])  # in [-1, 1]: actions 0.6, -1.6, 1.9

    def exact_noise(x, t, obs):
        return (x - model.sqrt_alpha_bar[t, None] * x0) / model.sqrt_one_minus_alpha_bar[t, None]

    model.predict_noise = exact_noise
    torch.manual_seed(0)
    torch.testing.assert_close(model.sample(torch.zeros(3, 3)), 2 * x0, atol=1e-5, rtol=0)


def test_diffusion_sampler_with_the_exact_noise_keeps_two_modes(examples):
    """Data x0 = +-0.75 with equal odds: the ideal noise prediction is analytic,
    (x_t - sqrt(ab) E[x0 | x_t]) / sqrt(1 - ab) with E[x0 | x_t] = 0.75 tanh(sqrt(ab) 0.75
    x_t / (1 - ab)); ten ancestral steps must then give both modes, in equal parts."""
    idql = examples["idql_offline"]
    model = _diffusion(idql, steps=10)

    def exact_noise(x, t, obs):
        a, s = model.sqrt_alpha_bar[t, None], model.sqrt_one_minus_alpha_bar[t, None]
        return (x - a * 0.75 * torch.tanh(a * 0.75 * x / s**2)) / s

    model.predict_noise = exact_noise
    torch.manual_seed(0)
    samples = model.sample(torch.zeros(4000, 3)).flatten() / 2  # back to [-1, 1]
    near_plus = ((samples - 0.75).abs() < 0.25).float().mean().item()
    near_minus = ((samples + 0.75).abs() < 0.25).float().mean().item()
    assert near_plus == pytest.approx(0.5, abs=0.04)
    assert near_minus == pytest.approx(0.5, abs=0.04)


def test_controller_swings_up_and_noise_hurts(examples):
    data = examples["offline_data"]
    from grl_torchrl.rl_modules import GymEnvSimulator, evaluation_summary

    with GymEnvSimulator("Pendulum-v1", num_envs=4, seed=0) as sim:
        clean = sim.evaluate(data.swing_up_controller, num_episodes=4)
        noisy = sim.evaluate(lambda o: data.swing_up_controller(o, 0.6), num_episodes=4)
    clean, noisy = evaluation_summary(clean), evaluation_summary(noisy)
    # upright and still costs 0 per step; hanging down costs pi^2 ~ 9.9 per step (~ -2000)
    assert clean["return_mean"] > -300
    assert noisy["return_mean"] < clean["return_mean"]


def test_behaviour_returns_names_only_present_behaviours(examples):
    data = examples["offline_data"]
    td = TensorDict(
        {
            ("next", "reward"): torch.tensor([[-1.0], [-2.0], [-4.0], [-3.0]]),
            "episode": torch.tensor([0, 0, 1, 2]),
            "behaviour": torch.tensor([0, 0, 2, 2]),
        },
        [4],
    )
    assert data.behaviour_returns(td) == {"random": -3.0, "controller": -3.5}


def test_docstring_examples_run(examples):
    # examples/ is outside pytest's doctest paths: run its docstring examples here
    # (DiffusionBehaviour's and IDQLPolicy's run with the package's, in grl_torchrl/)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(examples["offline_data"], optionflags=flags)
    assert result.attempted > 0 and result.failed == 0


def test_critic_losses_are_upstreams_idql_critic_step(examples):
    """loss.value_loss / loss.qvalue_loss against upstream's IDQLCritic formulas, written out."""
    idql = examples["idql_offline"]
    cfg = EasyDict(hidden_size=16, expectile=0.7, gamma=0.9, tau=0.005)
    torch.manual_seed(0)
    q, v = idql.build_critic(cfg, 3, 1)
    heads = [head.model.state_dict() for head in (q.model.q1, q.model.q2)]  # the init weights
    loss, updater = idql.build_critic_loss(cfg, q, v)
    n = 64
    batch = TensorDict(
        {
            "observation": torch.randn(n, 3),
            "action": torch.rand(n, 1) * 4 - 2,
            ("next", "observation"): torch.randn(n, 3),
            ("next", "reward"): torch.randn(n, 1),
            ("next", "terminated"): torch.rand(n, 1) < 0.3,
            ("next", "done"): torch.rand(n, 1) < 0.5,
        },
        [n],
    )
    state, action = batch["observation"], batch["action"]
    with torch.no_grad():
        # the target critic starts as a copy of the online one
        q1, q2 = q.compute_double_q(action, state)
        u = torch.minimum(q1, q2) - v(state)
        v_loss = (torch.abs(0.7 - (u < 0).float()) * u**2).mean()
        not_terminated = 1.0 - batch["next", "terminated"].float()
        y = batch["next", "reward"] + 0.9 * not_terminated * v(batch["next", "observation"])
        q_loss = (torch.mean((q1 - y) ** 2) + torch.mean((q2 - y) ** 2)) / 2
    torch.testing.assert_close(loss.value_loss(batch)[0], v_loss)
    torch.testing.assert_close(loss.qvalue_loss(batch)[0], 2 * q_loss)
    # q is bound to the loss: the loss's parameters are the heads' weights, and a Polyak
    # step moves the target (not q) towards q after q changes.
    for i, state_dict in enumerate(heads):
        for key, value in state_dict.items():
            torch.testing.assert_close(getattr(q.model, f"q{i + 1}").model.state_dict()[key], value)
    q_target = idql.build_critic(cfg, 3, 1)[0].bind_to_loss(loss, target=True)
    with torch.no_grad():
        for p in loss.qvalue_network_params.values(True, True):
            p.add_(1.0)
    before = q_target(action, state)
    updater.step()
    after = q_target(action, state)
    assert not torch.equal(before, after)
    torch.testing.assert_close(before, q1.minimum(q2))


def test_idql_pieces_are_the_package_ones(examples):
    """The example imports the diffusion model and IDQLPolicy from the package (reusable
    without sys.path tricks), not copies of them."""
    from grl_torchrl.rl_modules import idql as package

    idql = examples["idql_offline"]
    assert idql.DiffusionBehaviour is package.DiffusionBehaviour
    assert idql.IDQLPolicy is package.IDQLPolicy


def test_diffusion_bounds_from_a_batched_env_spec_are_refused_clearly():
    from grl_torchrl.rl_modules import GymEnvSimulator
    from grl_torchrl.rl_modules.idql import DiffusionBehaviour

    with GymEnvSimulator("Pendulum-v1", num_envs=5, seed=0) as sim:
        space = sim.env.action_spec.space  # bounds [5, 1]: one row per env
    kwargs = dict(steps=3, hidden_size=8, time_embed_dim=8)
    with pytest.raises(ValueError, match=r"low must be .*\[act_dim\] = \[1\], got shape \[5, 1\]"):
        DiffusionBehaviour(3, 1, space.low, space.high, **kwargs)
    one_env = DiffusionBehaviour(3, 1, space.low[0], space.high[0], **kwargs)
    assert one_env.low.tolist() == [-2.0] and one_env.high.tolist() == [2.0]
    scalars = DiffusionBehaviour(3, 2, -1.0, 1.0, **kwargs)  # numbers: every action dim
    assert scalars.low.tolist() == [-1.0, -1.0]
    assert scalars.sample(torch.zeros(4, 3)).shape == (4, 2)
    with pytest.raises(ValueError, match="low must be < high"):
        DiffusionBehaviour(3, 1, 1.0, 1.0, **kwargs)
    with pytest.raises(ValueError, match="high must be finite"):
        DiffusionBehaviour(3, 1, -1.0, math.inf, **kwargs)
    with pytest.raises(ValueError, match="act_dim must be an int >= 1, got 0"):
        DiffusionBehaviour(3, 0, -1.0, 1.0, **kwargs)
