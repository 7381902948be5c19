"""Block layout: map a tensor to a 2-D ``(n_blocks, block_elems)`` view and back.

Covers every granularity of :class:`~lowbit.formats.block_format.BlockFormat`: 1-D blocks along an
axis (ragged last block zero-padded), whole-axis (per-channel), whole-tensor and 2-D tiles over
the last two axes. Rows are ordered like the scales array (C order of ``scale_shape``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlockLayout:
    shape: tuple
    block_size: object
    axis: int

    @staticmethod
    def make(shape, block_size, axis=-1) -> "BlockLayout":
        shape = tuple(int(s) for s in shape)
        nd = len(shape)
        if isinstance(block_size, tuple):
            if nd < 2:
                raise ValueError(f"2-D block_size {block_size} needs a tensor with >= 2 dims, "
                                 f"got shape {shape}")
            axis = nd - 1
        elif block_size is None:
            axis = 0
        else:
            if nd == 0:
                raise ValueError("block formats need at least a 1-D array")
            if not -nd <= axis < nd:
                raise ValueError(f"axis must be in [{-nd}, {nd - 1}] for shape {shape}, got {axis}")
            axis = axis % nd
        return BlockLayout(shape, block_size, axis)

    # ---- geometry ---------------------------------------------------------------------------
    @property
    def k(self) -> int:
        bs = self.block_size
        if isinstance(bs, tuple):
            return bs[0] * bs[1]
        if bs is None:
            return max(int(np.prod(self.shape, dtype=np.int64)), 1)
        if bs == -1:
            return max(self.shape[self.axis], 1)
        return bs

    @property
    def scale_shape(self) -> tuple:
        bs = self.block_size
        if bs is None:
            return ()
        if isinstance(bs, tuple):
            m, n = self.shape[-2:]
            return self.shape[:-2] + (-(-m // bs[0]), -(-n // bs[1]))
        L = self.shape[self.axis]
        nb = 1 if bs == -1 else -(-L // bs)
        s = list(self.shape)
        s[self.axis] = nb
        return tuple(s)

    @property
    def n_blocks(self) -> int:
        return int(np.prod(self.scale_shape, dtype=np.int64))

    # ---- transforms ------------------------------------------------------------------------
    def to_rows(self, x: np.ndarray) -> np.ndarray:
        """``x`` (of ``shape``) -> ``(n_blocks, k)`` array, zero-padded."""
        bs = self.block_size
        if bs is None:
            return np.reshape(x, (1, -1))
        if isinstance(bs, tuple):
            k1, k2 = bs
            *lead, m, n = self.shape
            m1, n1 = -(-m // k1), -(-n // k2)
            if m1 * k1 != m or n1 * k2 != n:
                pad = [(0, 0)] * len(lead) + [(0, m1 * k1 - m), (0, n1 * k2 - n)]
                x = np.pad(x, pad)
            x = x.reshape(*lead, m1, k1, n1, k2)
            nl = len(lead)
            perm = list(range(nl)) + [nl, nl + 2, nl + 1, nl + 3]
            return np.ascontiguousarray(x.transpose(perm)).reshape(-1, k1 * k2)
        xm = np.moveaxis(x, self.axis, -1)
        L = xm.shape[-1]
        k = self.k
        nb = -(-L // k) if L else 0
        if nb * k != L:
            xm = np.pad(xm, [(0, 0)] * (xm.ndim - 1) + [(0, nb * k - L)])
        return np.ascontiguousarray(xm).reshape(-1, k)

    def from_rows(self, rows: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_rows` (drops the padding)."""
        bs = self.block_size
        if bs is None:
            return rows.reshape(self.shape)
        if isinstance(bs, tuple):
            k1, k2 = bs
            *lead, m, n = self.shape
            m1, n1 = -(-m // k1), -(-n // k2)
            nl = len(lead)
            x = rows.reshape(*lead, m1, n1, k1, k2)
            perm = list(range(nl)) + [nl, nl + 2, nl + 1, nl + 3]
            x = x.transpose(perm).reshape(*lead, m1 * k1, n1 * k2)
            return np.ascontiguousarray(x[..., :m, :n])
        moved = list(self.shape)
        L = moved.pop(self.axis)
        k = self.k
        nb = -(-L // k) if L else 0
        xm = rows.reshape(*moved, nb * k)[..., :L]
        return np.ascontiguousarray(np.moveaxis(xm, -1, self.axis))

    def scales_from_rows(self, per_row: np.ndarray) -> np.ndarray:
        """Per-block vector (row order) -> array of ``scale_shape``."""
        bs = self.block_size
        if bs is None or isinstance(bs, tuple):
            return per_row.reshape(self.scale_shape)
        moved = list(self.scale_shape)
        nb = moved.pop(self.axis)
        return np.moveaxis(per_row.reshape(*moved, nb), -1, self.axis)

    def scales_to_rows(self, scales: np.ndarray) -> np.ndarray:
        bs = self.block_size
        s = np.asarray(scales)
        if bs is None or isinstance(bs, tuple):
            return s.reshape(-1)
        return np.moveaxis(s, self.axis, -1).reshape(-1)
