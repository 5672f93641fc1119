"""The shape rule for skinny matrix products (used by the stacked heads and by inductor).

See :mod:`grl_torchrl.objectives.matmul_layout` for the measurements behind it.
"""

from __future__ import annotations

__all__ = ["is_skinny"]


def is_skinny(rows: int, inner: int, columns: int, *, batched: bool) -> bool:
    """Whether ``[rows, inner] @ [inner, columns]`` runs faster as its transpose's product.

    The thresholds are where the transposed product was measurably faster on these
    machines (float32, one thread): at most 8 columns, an inner dimension of 32 or more, 4
    or more rows per column; a plain matrix-vector product (one column, not batched) is
    already fast.

    >>> is_skinny(256, 256, 4, batched=False), is_skinny(256, 256, 1, batched=True)
    (True, True)
    >>> is_skinny(256, 256, 1, batched=False), is_skinny(256, 4, 4, batched=False)
    (False, False)
    """
    return columns <= 8 and inner >= 32 and rows >= 4 * columns and (batched or columns > 1)
