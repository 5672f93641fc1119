"""The examples' ``key=value`` options (issue 18, items 11-14).

Every option is read and range-checked by ``examples/_common.parse_options`` before an
example does anything: a bad value stops the run with ``SystemExit`` naming the key, the
value and the allowed range, and leaves the disk as it was. ``train_steps=0`` and
``eval_every=0`` mean the same in every example, and ``--help`` lists every option.
"""

from __future__ import annotations

import doctest
import importlib
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = ("sac_pendulum", "sac_pendulum_workers", "iql_offline", "idql_offline", "one_shot_value")

# Tiny budgets, so that a case the parser let through would run (and fail) in seconds.
SMOKE = {
    "sac_pendulum": dict(
        total_steps=200,
        random_steps=100,
        train_freq=50,
        batch_size=16,
        hidden_size=8,
        eval_every=0,
        eval_episodes=1,
    ),
    "iql_offline": dict(
        behaviour_sac_steps=50,
        random_episodes=1,
        behaviour_episodes=1,
        train_steps=20,
        batch_size=16,
        hidden_size=8,
        eval_every=10,
        eval_episodes=1,
    ),
    "one_shot_value": dict(
        train_episodes=1, test_episodes=1, train_steps=20, batch_size=16, hidden_size=8
    ),
}
SMOKE["sac_pendulum_workers"] = dict(SMOKE["sac_pendulum"], num_workers=2)
SMOKE["idql_offline"] = dict(
    SMOKE["iql_offline"],
    controller_episodes=1,
    diffusion_steps=2,
    time_embed_dim=4,
    num_candidates=2,
)


@pytest.fixture(scope="module")
def examples():
    """The example modules, imported from examples/ (not a package)."""
    sys.path.insert(0, str(EXAMPLES))
    threads = torch.get_num_threads()  # the examples set their own; give it back afterwards
    try:
        yield {name: importlib.import_module(name) for name in ("_common", *NAMES)}
    finally:
        sys.path.remove(str(EXAMPLES))
        torch.set_num_threads(threads)


def _argv(name: str, out_dir: Path, **options) -> list[str]:
    """The example's smoke budget with ``options`` replacing or adding entries."""
    merged = {**SMOKE[name], **options, "out_dir": out_dir}
    return [f"{key}={value}" for key, value in merged.items()]


def _snapshot(root: Path) -> dict:
    """Every path under ``root`` with its bytes (files) and modification time."""
    return {
        str(path.relative_to(root)): (
            path.read_bytes() if path.is_file() else None,
            path.stat().st_mtime_ns,
        )
        for path in sorted(root.rglob("*"))
    }


# ---------------------------------------------------------------------------------------
# 11. Every value is checked up front, naming the key, the value and the allowed range.

BAD_VALUES = [
    # the cases of issue 18
    ("sac_pendulum", "total_steps", "-5", "an int >= 1"),
    ("sac_pendulum", "batch_size", "0", "an int >= 1"),
    ("sac_pendulum", "train_freq", "0", "an int >= 1"),  # the loop never progressed
    ("sac_pendulum", "alpha_init", "0", "a float > 0"),  # was "math domain error"
    ("sac_pendulum", "num_threads", "0", "an int >= 1"),
    ("iql_offline", "expectile", "1.5", "a float in (0, 1)"),
    ("idql_offline", "expectile", "1.5", "a float in (0, 1)"),
    ("idql_offline", "num_candidates", "0", "an int >= 1"),
    ("sac_pendulum", "lr", "nan", "a float > 0"),
    ("sac_pendulum", "random_steps", "-1", "an int >= 0"),
    ("sac_pendulum_workers", "num_workers", "0", "an int >= 1"),
    # the other options
    ("sac_pendulum", "gamma", "1.5", "a float in [0, 1]"),
    ("sac_pendulum", "tau", "0", "a float in (0, 1]"),
    ("sac_pendulum", "eval_every", "-1", "an int >= 0"),
    ("sac_pendulum", "eval_episodes", "0", "an int >= 1"),
    ("sac_pendulum", "buffer_size", "0", "an int >= 1"),
    ("sac_pendulum", "hidden_size", "0", "an int >= 1"),
    ("sac_pendulum", "seed", "-1", "an int >= 0"),
    ("sac_pendulum", "total_steps", "1e4", "an int >= 1"),  # not an int
    ("sac_pendulum", "lr", "inf", "a float > 0"),
    ("sac_pendulum", "logger", "wandb", "one of csv, tensorboard"),
    ("sac_pendulum_workers", "backend", "thread", "one of process, ray"),
    ("sac_pendulum_workers", "lr", "-0.1", "a float > 0"),
    ("iql_offline", "expectile", "0", "a float in (0, 1)"),
    ("iql_offline", "beta", "-1", "a float >= 0"),
    ("iql_offline", "max_weight", "0", "a float in (0, inf]"),
    ("iql_offline", "train_steps", "-1", "an int >= 0"),
    ("iql_offline", "random_episodes", "0", "an int >= 1"),
    ("iql_offline", "controller_noise", "1.5", "a float in [0, 1]"),
    ("idql_offline", "temperature", "-1", "a float >= 0"),
    ("idql_offline", "diffusion_steps", "0", "an int >= 1"),
    ("idql_offline", "time_embed_dim", "2", "an int >= 4"),
    ("idql_offline", "controller_episodes", "-1", "an int >= 0"),
    ("one_shot_value", "gamma", "-0.1", "a float in [0, 1]"),
    ("one_shot_value", "time_condition", "maybe", "true or false"),
    ("one_shot_value", "train_episodes", "0", "an int >= 1"),
    ("one_shot_value", "test_episodes", "0", "an int >= 1"),
    ("one_shot_value", "batch_size", "0", "an int >= 1"),
]


@pytest.mark.parametrize(("name", "key", "text", "allowed"), BAD_VALUES)
def test_bad_value_stops_the_run_before_any_work(examples, tmp_path, name, key, text, allowed):
    out_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as err:
        examples[name].main(_argv(name, out_dir, **{key: text}))
    assert str(err.value) == f"option {key}={text}: expected {allowed}"
    assert not out_dir.exists()  # nothing ran: the output folder is made only afterwards


BAD_COMBINATIONS = [
    (
        "sac_pendulum",
        dict(batch_size=200, buffer_size=100),
        "batch_size=200 exceeds buffer_size=100",
    ),
    (
        "sac_pendulum_workers",
        dict(train_freq=51, num_workers=2),
        "train_freq=51 is not a multiple of num_workers=2",
    ),
    (
        "sac_pendulum_workers",
        dict(batch_size=200, buffer_size=100),
        "batch_size=200 exceeds buffer_size=100",
    ),
]


@pytest.mark.parametrize(("name", "options", "message"), BAD_COMBINATIONS)
def test_bad_combination_stops_the_run_before_any_work(examples, tmp_path, name, options, message):
    out_dir = tmp_path / "run"
    with pytest.raises(SystemExit, match=f"^invalid options: {message}"):
        examples[name].main(_argv(name, out_dir, **options))
    assert not out_dir.exists()


@pytest.mark.parametrize("name", NAMES)
def test_unknown_env_id_stops_the_run_before_any_work(examples, tmp_path, name):
    with pytest.raises(SystemExit, match=r"^option env_id=Pendulum-v7: expected "):
        examples[name].main(_argv(name, tmp_path / "run", env_id="Pendulum-v7"))
    assert not (tmp_path / "run").exists()


def test_sac_env_must_have_box_spaces(examples, tmp_path):
    # CartPole's action space is Discrete(2): SAC used to fail with an IndexError after the
    # logs were cleared.
    with pytest.raises(SystemExit, match=r"^option env_id=CartPole-v1: .*continuous \(Box\)"):
        examples["sac_pendulum"].main(_argv("sac_pendulum", tmp_path / "run", env_id="CartPole-v1"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", NAMES)
def test_out_dir_that_is_a_file_is_refused(examples, tmp_path, name):
    taken = tmp_path / "results.txt"
    taken.write_text("not a folder")
    argv = [*_argv(name, tmp_path), f"out_dir={taken}"]  # the last value of a key counts
    with pytest.raises(SystemExit, match=f"^option out_dir={taken}: expected a folder"):
        examples[name].main(argv)
    assert [p.name for p in tmp_path.iterdir()] == ["results.txt"]


@pytest.mark.parametrize("name", NAMES)
def test_every_number_has_a_range_and_out_of_range_values_are_refused(examples, name):
    common, options = examples["_common"], examples[name].OPTIONS
    assert examples[name].config == common.defaults(options)  # the module attribute kept
    for key, option in options.items():
        if not isinstance(option.default, (int, float)) or isinstance(option.default, bool):
            continue
        assert option.low is not None or option.high is not None or option.choices, key
        outside = []
        if option.low is not None:
            outside.append(option.low if option.low_open else option.low - 1)
        if option.high is not None and not math.isinf(option.high):
            outside.append(option.high if option.high_open else option.high + 1)
        if option.choices:
            outside.append(max(option.choices) + 1)
        if isinstance(option.default, float):
            outside.append(float("nan"))
        else:
            outside.append(option.default + 0.5)  # not an int
        for value in outside:
            with pytest.raises(SystemExit, match=rf"^option {key}={value}: expected "):
                common.parse_options(options, [f"{key}={value}"])


def test_parser_docstring_examples(examples):
    results = doctest.testmod(examples["_common"])
    assert results.attempted >= 5 and results.failed == 0


def test_parser_rules(examples):
    common = examples["_common"]
    options = dict(
        steps=common.Option(10, "steps", low=1),
        clip=common.Option(1.0, "clip", low=0, high=math.inf),
        tag=common.Option(None, "optional tag"),
        even=common.Option(2, "even", low=0, check=lambda v: None if v % 2 == 0 else "odd"),
    )
    cfg = common.parse_options(options, ["clip=inf", "tag=a=b", "even=4"])
    assert cfg == {"steps": 10, "clip": math.inf, "tag": "a=b", "even": 4}
    assert common.parse_options(options, ["tag=none"]).tag is None
    with pytest.raises(SystemExit, match=r"^option clip=-inf: expected a float in \[0, inf\]"):
        common.parse_options(options, ["clip=-inf"])
    with pytest.raises(SystemExit, match="^option even=3: odd$"):
        common.parse_options(options, ["even=3"])
    assert common.parse_options(options, ["steps=3", "steps=4"]).steps == 4  # as argparse
    with pytest.raises(SystemExit, match="^option steps=0: "):  # each one is checked
        common.parse_options(options, ["steps=0", "steps=4"])
    with pytest.raises(SystemExit, match="^unknown option 'step'; known options: steps, clip"):
        common.parse_options(options, ["step=3"])
    with pytest.raises(SystemExit, match="^invalid options: too many"):
        common.parse_options(options, ["steps=30"], check=lambda c: "too many" * (c.steps > 20))
    # A default outside its own range is the example's bug, caught when it is declared.
    with pytest.raises(ValueError, match="expected an int >= 1"):
        common.Option(0, "steps", low=1)
    with pytest.raises(TypeError, match="low/high bound numbers only"):
        common.Option("a", "name", low=0)


# ---------------------------------------------------------------------------------------
# 12. train_steps=0: no training, the untrained policy is evaluated and everything written;
# eval_every=0: the final evaluation only. The same in every example.

TRAINING = [
    ("iql_offline", "eval/return_mean.csv"),
    ("idql_offline", "eval/idql_return_mean.csv"),
    ("one_shot_value", "test/r2.csv"),
]


def _eval_steps(out_dir: Path, metric: str) -> list[int]:
    rows = (out_dir / "logs" / "scalars" / metric).read_text().splitlines()
    assert all(math.isfinite(float(row.split(",")[1])) for row in rows)
    return [int(row.split(",")[0]) for row in rows]


@pytest.mark.parametrize(("name", "metric"), TRAINING)
@pytest.mark.parametrize(
    ("options", "steps"),
    [(dict(train_steps=0), [0]), (dict(train_steps=20, eval_every=0), [20])],
    ids=["train_steps=0", "eval_every=0"],
)
def test_zero_means_the_same_everywhere(examples, tmp_path, name, metric, options, steps):
    examples[name].main(_argv(name, tmp_path, **options))
    assert _eval_steps(tmp_path, metric) == steps
    assert (tmp_path / "checkpoint.pt").is_file()
    assert (tmp_path / "learning_curve.png").is_file()
    # No gradient step, no training loss logged.
    logged_losses = list((tmp_path / "logs" / "scalars" / "train").glob("*loss*.csv"))
    assert bool(logged_losses) == (options["train_steps"] > 0)


def test_sac_eval_every_zero_is_the_final_evaluation_only(examples, tmp_path):
    examples["sac_pendulum"].main(_argv("sac_pendulum", tmp_path, eval_every=0))
    assert _eval_steps(tmp_path, "eval/return_mean.csv") == [200]


# ---------------------------------------------------------------------------------------
# 13. A bad option changes nothing on disk, not even the previous run's logs.

PREVIOUS_RUN_CASES = [
    ("sac_pendulum", dict(lr="nan")),
    ("sac_pendulum", dict(env_id="CartPole-v1")),
    ("sac_pendulum_workers", dict(num_workers=0)),
    ("sac_pendulum_workers", dict(train_freq=51)),
    ("iql_offline", dict(expectile=1.5)),
    ("idql_offline", dict(num_candidates=0)),
    ("one_shot_value", dict(eval_every=-1)),
]


@pytest.mark.parametrize(("name", "options"), PREVIOUS_RUN_CASES)
def test_bad_option_keeps_the_previous_run(examples, tmp_path, name, options):
    (tmp_path / "logs" / "scalars").mkdir(parents=True)
    (tmp_path / "logs" / "scalars" / "return.csv").write_text("100,-150.0\n")
    (tmp_path / "checkpoint.pt").write_bytes(b"previous run")
    (tmp_path / "dataset").mkdir()
    before = _snapshot(tmp_path)
    with pytest.raises(SystemExit, match="^(option|invalid options)"):
        examples[name].main(_argv(name, tmp_path, **options))
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------
# 14. --help lists every option with its default, allowed values and help line.


HELP_SCRIPT = """
import runpy, sys
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exit:
        print(f"exit code {exit.code}")
"""


def test_help_lists_every_option(examples):
    # One interpreter runs `python examples/<name>.py --help` for each example in turn (as
    # the shell would, via runpy), so that torch is imported once.
    paths = [str(EXAMPLES / f"{name}.py") for name in NAMES]
    proc = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT, *paths],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLES,
    )
    assert proc.returncode == 0, proc.stderr
    outputs = proc.stdout.split("exit code 0\n")
    assert outputs[-1] == "" and len(outputs) == len(NAMES) + 1, proc.stdout
    for name, output in zip(NAMES, outputs, strict=False):
        lines = output.splitlines()
        assert lines[0] == f"usage: python {name}.py [key=value ...]"
        options = examples[name].OPTIONS
        listed = [line.split()[0].split("=")[0] for line in lines if line.startswith("  ")]
        assert listed == list(options)
        for line, (key, option) in zip(lines[-len(options) :], options.items(), strict=True):
            default = option.default
            shown = str(default).lower() if isinstance(default, bool) else str(default) or "''"
            assert line.split()[0] == f"{key}={shown}"
            assert f"  {option.help} [{option.allowed()}]" in line


def test_short_help_in_process(examples, capsys):
    with pytest.raises(SystemExit) as err:
        examples["one_shot_value"].main(["train_steps=5", "-h"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    assert "train_steps=3000" in out and "(0: no training" in out and "[an int >= 0]" in out
