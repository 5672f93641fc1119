"""Plumbing shared by the example scripts: ``key=value`` overrides, seeding, logger, plot.

Everything algorithmic stays in the example files themselves; this module only holds the
few lines that would otherwise be copied into each of them.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from easydict import EasyDict
from torchrl.record.loggers import Logger, get_logger

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_overrides(config: EasyDict, argv: Sequence[str] | None) -> EasyDict:
    """Returns a copy of ``config`` with ``key=value`` arguments applied.

    Each value is cast to the type of the default it replaces; an unknown key, a missing
    ``=`` or a value that does not cast raises ``SystemExit`` with a message naming it.

    >>> cfg = parse_overrides(EasyDict(steps=10, lr=1e-3, name="a", flag=False), ["steps=5", "flag=true"])
    >>> cfg.steps, cfg.lr, cfg.flag
    (5, 0.001, True)
    """
    config = EasyDict(config)
    for arg in argv or ():
        key, sep, text = arg.partition("=")
        if not sep:
            raise SystemExit(f"argument {arg!r}: expected key=value (keys: {', '.join(config)})")
        if key not in config:
            raise SystemExit(f"unknown config key {key!r}; known keys: {', '.join(config)}")
        default = config[key]
        try:
            if isinstance(default, bool):
                if text.lower() not in _TRUE | _FALSE:
                    raise ValueError("expected true/false")
                value = text.lower() in _TRUE
            elif default is None:
                value = None if text.lower() in ("", "none") else text
            else:
                value = type(default)(text)
        except ValueError as err:
            raise SystemExit(
                f"config key {key!r}: cannot read {text!r} as {type(default).__name__} ({err})"
            ) from None
        config[key] = value
    return config


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
