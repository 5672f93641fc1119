"""Plumbing shared by the example scripts: ``key=value`` options, seeding, logger, plot.

Everything algorithmic stays in the example files themselves; this module only holds the
few lines that would otherwise be copied into each of them.
"""

from __future__ import annotations

import importlib.util
import math
import random
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from easydict import EasyDict
from torchrl.record.loggers import Logger, get_logger

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_HELP = {"-h", "--help"}


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option of an example: its default, help line and allowed values.

    The type is the default's (bool, int, float or str; a ``None`` default makes an optional
    str). ``low``/``high`` bound numbers (inclusive unless ``low_open``/``high_open``); NaN
    is always refused and an infinity unless the bound on its side is that infinity.
    ``choices`` lists the allowed values; ``check(value)`` returns an error message or None
    for rules that are not ranges.

    >>> tau = Option(0.005, "Polyak factor", low=0, high=1, low_open=True)
    >>> tau.allowed()
    'a float in (0, 1]'
    >>> tau.parse("tau", "0.1")
    0.1
    >>> tau.parse("tau", "0")
    Traceback (most recent call last):
    ...
    SystemExit: option tau=0: expected a float in (0, 1]
    """

    default: Any
    help: str
    _: KW_ONLY
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.default, (bool, int, float, str, type(None))):
            raise TypeError(
                f"Option default must be a bool, int, float, str or None, got {self.default!r}"
            )
        if (self.low is not None or self.high is not None) and not self.is_number:
            raise TypeError(f"low/high bound numbers only, not the default {self.default!r}")
        # A wrong default is the example's bug; ``check`` waits for parsing (it may be slow).
        try:
            self.validate("default", self.default, run_check=False)
        except SystemExit as err:
            raise ValueError(str(err)) from None

    @property
    def kind(self) -> type:
        return str if self.default is None else type(self.default)

    @property
    def is_number(self) -> bool:
        return self.kind in (int, float)

    def allowed(self) -> str:
        """The allowed values in words, as the error messages and ``--help`` give them."""
        if self.choices is not None:
            return "one of " + ", ".join(_show(choice) for choice in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a string (empty or none: not set)" if self.default is None else "a string"
        name = "an int" if self.kind is int else "a float"
        low, high = _show(self.low), _show(self.high)
        if self.low is not None and self.high is not None:
            return (
                f"{name} in {'(' if self.low_open else '['}{low}, {high}"
                f"{')' if self.high_open else ']'}"
            )
        if self.low is not None:
            return f"{name} {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{name} {'<' if self.high_open else '<='} {high}"
        return f"{name} (finite)" if self.kind is float else name

    def parse(self, key: str, text: str) -> Any:
        """Reads ``text`` as this option's value; ``SystemExit`` names the key, the text and
        the allowed values when it is not one of them."""
        lowered = text.strip().lower()
        if self.kind is bool:
            if lowered not in _TRUE | _FALSE:
                raise SystemExit(f"option {key}={text}: expected {self.allowed()}")
            value = lowered in _TRUE
        elif self.default is None:
            value = None if lowered in ("", "none") else text
        elif self.kind is str:
            value = text
        else:
            try:
                value = self.kind(text)
            except ValueError:
                raise SystemExit(f"option {key}={text}: expected {self.allowed()}") from None
        self.validate(key, value, text)
        return value

    def validate(
        self, key: str, value: Any, text: str | None = None, *, run_check: bool = True
    ) -> None:
        """Raises ``SystemExit`` naming ``key``, the value and the allowed values unless
        ``value`` is one of them."""
        shown = text if text is not None else _show(value)
        problem = f"option {key}={shown}: expected {self.allowed()}"
        if value is None and self.default is None:
            return
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not self.kind:
            raise SystemExit(problem)
        if self.choices is not None and value not in self.choices:
            raise SystemExit(problem)
        if self.is_number:
            if math.isnan(value) or (math.isinf(value) and value not in (self.low, self.high)):
                raise SystemExit(problem)
            if self.low is not None and (value < self.low or self.low_open and value == self.low):
                raise SystemExit(problem)
            if self.high is not None and (
                value > self.high or self.high_open and value == self.high
            ):
                raise SystemExit(problem)
        if run_check and self.check is not None and (message := self.check(value)) is not None:
            raise SystemExit(f"option {key}={shown}: {message}")


def _show(value: Any) -> str:
    """``value`` as it is typed on the command line (``true``, ``0.001``, ``csv``, ``''``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))  # bounds read better as 0 and 1 than as 0.0 and 1.0
    return "''" if value == "" else str(value)


def _default_text(value: Any) -> str:
    # A float default keeps its point (alpha_init=1.0) so that --help shows its type.
    return str(value) if isinstance(value, float) else _show(value)


def defaults(options: Mapping[str, Option]) -> EasyDict:
    """The default value of every option, as an ``EasyDict``.

    >>> defaults(dict(steps=Option(10, "steps", low=1), name=Option("a", "name")))
    {'steps': 10, 'name': 'a'}
    """
    return EasyDict({key: option.default for key, option in options.items()})


def parse_options(
    options: Mapping[str, Option],
    argv: Sequence[str] | None,
    check: Callable[[EasyDict], str | None] | None = None,
) -> EasyDict:
    """The defaults of ``options`` with ``key=value`` arguments applied, all validated.

    Every value is read as its option's type and checked against its range before anything
    else happens (a key given twice takes its last value, as with argparse). ``check(cfg)``,
    if given, then checks the rules that tie options together and returns an error message
    or None. Any error raises ``SystemExit`` naming the key, the value and the allowed
    values. ``-h``/``--help`` prints every option and exits with 0.

    >>> options = dict(steps=Option(10, "gradient steps", low=1), flag=Option(False, "a flag"))
    >>> parse_options(options, ["steps=5", "flag=true"])
    {'steps': 5, 'flag': True}
    >>> parse_options(options, ["steps=0"])
    Traceback (most recent call last):
    ...
    SystemExit: option steps=0: expected an int >= 1
    """
    argv = list(argv or ())
    if _HELP & set(argv):
        print(options_help(options))
        raise SystemExit(0)
    config = defaults(options)
    for arg in argv:
        key, sep, text = arg.partition("=")
        if not sep:
            raise SystemExit(
                f"argument {arg!r}: expected key=value (options: {', '.join(options)}; "
                "--help lists them)"
            )
        if key not in options:
            raise SystemExit(
                f"unknown option {key!r}; known options: {', '.join(options)} (--help lists them)"
            )
        config[key] = options[key].parse(key, text)
    if check is not None and (message := check(config)) is not None:
        raise SystemExit(f"invalid options: {message}")
    return config


def options_help(options: Mapping[str, Option]) -> str:
    """The ``--help`` text: one line per option with its default, allowed values and help."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "example.py"
    rows = [
        (f"{key}={'none' if option.default is None else _default_text(option.default)}", option)
        for key, option in options.items()
    ]
    width = max(len(left) for left, _ in rows)
    lines = [f"usage: python {program} [key=value ...]", "", "options (key=default):"]
    lines += [f"  {left:<{width}}  {option.help} [{option.allowed()}]" for left, option in rows]
    return "\n".join(lines)


def output_folder(path: str) -> str | None:
    """``Option.check`` for ``out_dir``: an error message when ``path`` is an existing file."""
    if path and Path(path).exists() and not Path(path).is_dir():
        return "expected a folder (to create or reuse), got an existing file"
    return None


def known_env_id(env_id: str) -> str | None:
    """``Option.check`` for gymnasium ids: an error message unless ``env_id`` is registered."""
    import gymnasium

    try:
        gymnasium.spec(env_id)
    except gymnasium.error.Error as err:
        return f"expected a registered gymnasium id ({err})"
    return None


def continuous_env_id(env_id: str) -> str | None:
    """``Option.check`` for gymnasium ids: an error message unless ``env_id`` makes an env
    with a flat ``Box`` observation and a ``Box`` action (what the SAC examples need)."""
    import gymnasium

    try:
        env = gymnasium.make(env_id)
    except (gymnasium.error.Error, ImportError) as err:
        return f"expected a registered gymnasium id ({err})"
    try:
        action, obs = env.action_space, env.observation_space
    finally:
        env.close()
    if not isinstance(action, gymnasium.spaces.Box):
        return f"expected an env with a continuous (Box) action space, got {action}"
    if not isinstance(obs, gymnasium.spaces.Box) or len(obs.shape) != 1:
        return f"expected an env with a flat Box observation space, got {obs}"
    return None


def seed_everything(seed: int, num_threads: int) -> None:
    """Seeds python, numpy and torch, and fixes torch's intra-op thread count."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # Small MLPs gain nothing from intra-op threads on a 2-core machine; a fixed count also
    # keeps float reductions, hence results, identical from run to run.
    torch.set_num_threads(num_threads)


def skip_pandas_probe() -> None:
    """Caches the absence of pandas so that tensordict stops looking for it on every call.

    tensordict 0.14 calls ``importlib.util.find_spec("pandas")`` for each output a
    ``TensorDictModule`` writes (in ``TensorDict.from_any``); without pandas installed each
    probe scans ``sys.path`` (~0.1 ms), which added ~0.5 ms to every SAC update here.
    A ``None`` entry in ``sys.modules`` is Python's own "not importable" marker, so this
    changes nothing else when pandas is absent, and it is skipped when pandas is present.
    """
    if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is None:
        sys.modules["pandas"] = None


def make_logger(kind: str, out_dir: Path) -> Logger:
    """A TorchRL logger writing under ``out_dir/logs`` (``csv`` or ``tensorboard``).

    A re-run into the same folder replaces the earlier logs (the CSV logger appends).
    """
    if kind not in ("csv", "tensorboard"):
        raise SystemExit(f"config key 'logger': expected 'csv' or 'tensorboard', got {kind!r}")
    shutil.rmtree(out_dir / "logs", ignore_errors=True)
    return get_logger(kind, logger_name=str(out_dir), experiment_name="logs")


def plot_curves(
    path: Path,
    curves: dict,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    references: dict | None = None,
) -> None:
    """Writes a PNG with one line per ``name: (xs, ys)`` entry of ``curves`` and one dashed
    horizontal line per ``name: y`` entry of ``references``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, label=name)
    for index, (name, y) in enumerate((references or {}).items()):
        ax.axhline(y, linestyle="--", color=f"C{len(curves) + index}", label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
