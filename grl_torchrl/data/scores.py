"""D4RL-style normalised scores: ``100 * (return - random) / (expert - random)``."""

from __future__ import annotations

import math

__all__ = ["D4RL_REF_SCORES", "normalized_score", "reference_scores"]

#: D4RL's published reference returns, ``task: (random policy, expert policy)``
#: (``d4rl/infos.py`` REF_MIN_SCORE / REF_MAX_SCORE, the same for every dataset of a task and
#: for its -v0/-v1/-v2 envs).
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
}


def reference_scores(name: str, metadata: dict | None = None) -> tuple[float, float] | None:
    """``(ref_min, ref_max)`` for a dataset, or ``None`` when none is known.

    A Minari dataset's own ``ref_min_score`` / ``ref_max_score`` (in ``metadata``) come
    first; otherwise D4RL's constants when ``name`` (a dataset id, an env id or a file
    name) names one of their tasks.

    >>> reference_scores("hopper-medium-replay-v2")
    (-20.272305, 3234.3)
    >>> reference_scores("x", {"ref_min_score": 0.0, "ref_max_score": 10.0})
    (0.0, 10.0)
    >>> reference_scores("Pendulum-v1") is None
    True
    """
    metadata = metadata or {}
    low, high = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if low is not None and high is not None:
        return float(low), float(high)
    lowered = name.lower().replace("_", "").replace("-", "")
    for task, scores in D4RL_REF_SCORES.items():
        if task in lowered:
            return scores
    return None


def normalized_score(episode_return: float, ref: tuple[float, float]) -> float:
    """D4RL's normalised score in percent.

    >>> normalized_score(3234.3, (-20.272305, 3234.3))
    100.0
    """
    low, high = ref
    if not (math.isfinite(low) and math.isfinite(high)) or high == low:
        raise ValueError(f"normalized_score: ref must be finite with max != min, got {ref}")
    return 100.0 * (episode_return - low) / (high - low)
