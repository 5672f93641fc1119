"""Frame handling for ``GymEnvSimulator.evaluate(render_args=...)``."""

from __future__ import annotations

import importlib.util
import math
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np

_RENDER_KEYS = {"video_path", "fps"}


def check_render_args(render_args: Any) -> dict:
    if not isinstance(render_args, dict):
        raise TypeError(
            f"render_args must be a dict (e.g. dict(video_path='eval.gif', fps=30)) or None, "
            f"got {type(render_args).__name__}."
        )
    unknown = set(render_args) - _RENDER_KEYS
    if unknown:
        raise ValueError(
            f"render_args got unknown keys {sorted(unknown)}; accepted: {sorted(_RENDER_KEYS)}."
        )
    path = render_args.get("video_path")
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"render_args['video_path'] must be a str or os.PathLike path to a .gif, "
                f"got {path!r} ({type(path).__name__})."
            )
        if Path(path).suffix.lower() != ".gif":
            raise ValueError(f"render_args['video_path'] must end with '.gif', got {path!r}.")
        # checked before any episode runs, so a bad path cannot lose the results
        parent = Path(path).expanduser().resolve().parent
        if not parent.is_dir():
            raise FileNotFoundError(
                f"render_args['video_path'] {str(path)!r}: its directory {str(parent)!r} "
                "does not exist."
            )
        if not os.access(parent, os.W_OK):
            raise PermissionError(
                f"render_args['video_path'] {str(path)!r}: its directory {str(parent)!r} "
                "is not writable."
            )
        if Path(path).expanduser().is_dir():
            raise IsADirectoryError(
                f"render_args['video_path'] {str(path)!r} is a directory, not a .gif file."
            )
        if importlib.util.find_spec("PIL") is None:
            # Pillow is an optional dependency of the package
            raise ImportError(
                "render_args['video_path'] writes a GIF with Pillow, which is not installed: "
                "pip install pillow (or grl_torchrl[examples])."
            )
    fps = render_args.get("fps", 30)
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real):
        raise TypeError(
            f"render_args['fps'] must be a positive finite number, got {fps!r} "
            f"({type(fps).__name__})."
        )
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"render_args['fps'] must be a positive finite number, got {fps!r}.")
    return {"video_path": path, "fps": float(fps)}


def split_frames(frames: list, lengths: list[int]) -> list[np.ndarray]:
    """Cuts one env's frame list (a reset frame, then one per step, per episode)."""
    out, start = [], 0
    for length in lengths:
        out.append(np.stack(frames[start : start + length + 1]).astype(np.uint8, copy=False))
        start += length + 1
    return out


def write_gif(path: str | Path, episodes: list[np.ndarray], fps: float) -> None:
    """Writes the episodes' frames back to back as one GIF (Pillow, an optional dependency)."""
    from PIL import Image

    images = [Image.fromarray(frame) for frames in episodes for frame in frames]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=max(int(1000 / fps), 1),
        loop=0,
    )
