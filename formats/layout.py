"""Block layout: map a tensor to a 2-D ``(n_blocks, block_elems)`` view and back.

Covers every granularity of :class:`~lowbit.formats.block_format.BlockFormat`: 1-D blocks along an
axis (ragged last block zero-padded), whole-axis (per-channel), whole-tensor and 2-D tiles over
the last two axes.

Row order: for blocks along ``axis`` the tensor is seen as ``(A, L, B)`` (``A`` the product of
the dimensions before ``axis``, ``L`` its length, ``B`` the product after it); row
``((a * B) + b) * nb + j`` is block ``j`` of line ``(a, b)``. 2-D tiles of a tensor seen as
``(A, M, N)``: row ``(a * MT + i) * NT + j`` is tile ``(i, j)``. One row for a whole tensor
(``block_size=None``). :meth:`BlockLayout.scales_from_rows` maps per-row values to
``scale_shape``.

:meth:`BlockLayout.row_chunks` walks a C-contiguous tensor in bounded pieces of whole rows (or
column ranges of one row when a row alone exceeds the bound), which is how the block engine
and ``QuantizedTensor.dequantize`` keep their memory proportional to the tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class RowChunk:
    """Rows ``r0:r1`` (columns ``c0:c1`` of them) of a layout as a C-contiguous array ``rows``
    of shape ``(r1 - r0, c1 - c0)`` (zero padding included)."""

    r0: int
    r1: int
    c0: int
    c1: int
    rows: np.ndarray
    full: bool = True
    """Whether ``c0:c1`` is the whole row (False: a column range of the single row ``r0``)."""


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
            if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
                raise TypeError(f"axis must be an integer, got {axis!r} "
                                f"({type(axis).__name__})")
            if not -nd <= axis < nd:
                raise ValueError(f"axis must be in [{-nd}, {nd - 1}] for shape {shape}, got {axis}")
            axis = int(axis) % nd
        return BlockLayout(shape, block_size, axis)

    # ---- geometry ---------------------------------------------------------------------------
    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def k(self) -> int:
        """Elements per row (block), padding included."""
        bs = self.block_size
        if isinstance(bs, tuple):
            return bs[0] * bs[1]
        if bs is None:
            return self.numel
        if bs == -1:
            return max(self.shape[self.axis], 1)
        return bs

    @property
    def blocks_per_line(self) -> int:
        """Blocks along ``axis`` (1-D block sizes): ``ceil(L / k)``; one for per-channel unless
        the axis is empty."""
        L = self.shape[self.axis]
        if self.block_size == -1:
            return 1 if L > 0 else 0
        return -(-L // self.block_size)

    @property
    def scale_shape(self) -> tuple:
        bs = self.block_size
        if bs is None:
            return ()
        if isinstance(bs, tuple):
            m, n = self.shape[-2:]
            return self.shape[:-2] + (-(-m // bs[0]), -(-n // bs[1]))
        s = list(self.shape)
        s[self.axis] = self.blocks_per_line
        return tuple(s)

    @property
    def n_blocks(self) -> int:
        return math.prod(self.scale_shape)

    def _alb(self):
        a = math.prod(self.shape[:self.axis])
        b = math.prod(self.shape[self.axis + 1:])
        return a, self.shape[self.axis], b

    def _amn(self):
        *lead, m, n = self.shape
        return math.prod(lead), m, n

    # ---- whole-tensor transforms (small tensors, metrics) -------------------------------------
    def to_rows(self, x: np.ndarray) -> np.ndarray:
        """``x`` (of ``shape``) -> ``(n_blocks, k)`` array, zero-padded (a copy in general)."""
        x = np.ascontiguousarray(x)
        out = np.empty((self.n_blocks, self.k), x.dtype)
        for ch in self.row_chunks(x, max(self.n_blocks * self.k, 1)):
            out[ch.r0:ch.r1, ch.c0:ch.c1] = ch.rows
        return out

    def from_rows(self, rows: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_rows` (drops the padding)."""
        out = np.empty(self.shape, rows.dtype)
        self.write_rows(out, RowChunk(0, rows.shape[0], 0, rows.shape[1], rows))
        return out

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

    # ---- bounded-memory traversal -------------------------------------------------------------
    def row_chunks(self, x: np.ndarray, max_elems: int) -> Iterator[RowChunk]:
        """Consecutive :class:`RowChunk` s of the C-contiguous tensor ``x`` (of ``shape``), in row
        order, each holding about ``max_elems`` elements or fewer (at least one block, or a
        column range of one row when a row is longer than ``max_elems``)."""
        if x.shape != self.shape:
            raise ValueError(f"x has shape {x.shape}, the layout {self.shape}")
        max_elems = max(int(max_elems), 1)
        bs = self.block_size
        if bs is None:
            flat = x.reshape(-1)
            n = flat.shape[0]
            for c0 in range(0, n, max_elems):
                c1 = min(c0 + max_elems, n)
                yield RowChunk(0, 1, c0, c1, flat[c0:c1].reshape(1, -1), full=n <= max_elems)
            return
        if isinstance(bs, tuple):
            yield from self._tile_chunks(x, max_elems)
            return
        yield from self._line_chunks(x, max_elems)

    def _line_chunks(self, x, max_elems):
        A, L, B = self._alb()
        nb, k = self.blocks_per_line, self.k
        if nb == 0 or A * B == 0:
            return
        x3 = x.reshape(A, L, B)
        per_line = nb * k
        if per_line <= max_elems:
            lines = max(max_elems // per_line, 1)
            if B == 1:
                x2 = x3[:, :, 0]
                for l0 in range(0, A, lines):
                    l1 = min(l0 + lines, A)
                    yield RowChunk(l0 * nb, l1 * nb, 0, k, self._pad_lines(x2[l0:l1], nb, k))
            elif B <= lines:
                step = max(lines // B, 1)
                for a0 in range(0, A, step):
                    a1 = min(a0 + step, A)
                    seg = x3[a0:a1].transpose(0, 2, 1).reshape(-1, L)
                    yield RowChunk(a0 * B * nb, a1 * B * nb, 0, k, self._pad_lines(seg, nb, k))
            else:
                for a in range(A):
                    for b0 in range(0, B, lines):
                        b1 = min(b0 + lines, B)
                        seg = x3[a, :, b0:b1].T
                        r0 = (a * B + b0) * nb
                        yield RowChunk(r0, r0 + (b1 - b0) * nb, 0, k,
                                       self._pad_lines(seg, nb, k))
            return
        # one line is longer than the bound: pieces of a line (whole blocks, or columns of the
        # single per-channel row)
        for a in range(A):
            for b in range(B):
                line = x3[a, :, b]
                base = (a * B + b) * nb
                if nb > 1 and k <= max_elems:
                    step = max(max_elems // k, 1)
                    for j0 in range(0, nb, step):
                        j1 = min(j0 + step, nb)
                        seg = line[j0 * k:min(j1 * k, L)]
                        yield RowChunk(base + j0, base + j1, 0, k,
                                       self._pad_lines(seg[None, :], j1 - j0, k))
                else:
                    for j in range(nb):
                        for c0 in range(0, k, max_elems):
                            c1 = min(c0 + max_elems, k)
                            seg = np.zeros((1, c1 - c0), x.dtype)
                            lo, hi = j * k + c0, min(j * k + c1, L)
                            if hi > lo:
                                seg[0, :hi - lo] = line[lo:hi]
                            yield RowChunk(base + j, base + j + 1, c0, c1, seg, full=False)

    @staticmethod
    def _pad_lines(seg, nb, k):
        """(n, L') lines -> (n * nb, k) rows, zero padded to ``nb * k`` columns."""
        n, L = seg.shape
        if L == nb * k and seg.flags.c_contiguous:
            return seg.reshape(n * nb, k)
        out = np.zeros((n, nb * k), seg.dtype)
        out[:, :L] = seg
        return out.reshape(n * nb, k)

    def _tile_chunks(self, x, max_elems):
        k1, k2 = self.block_size
        A, M, N = self._amn()
        MT, NT = -(-M // k1), -(-N // k2)
        if A * MT * NT == 0:
            return
        x3 = x.reshape(A, M, N)
        per_trow = NT * k1 * k2
        step = max(max_elems // per_trow, 1)
        for a in range(A):
            for t0 in range(0, MT, step):
                t1 = min(t0 + step, MT)
                seg = np.zeros(((t1 - t0) * k1, NT * k2), x.dtype)
                m0, m1 = t0 * k1, min(t1 * k1, M)
                seg[:m1 - m0, :N] = x3[a, m0:m1, :]
                rows = seg.reshape(t1 - t0, k1, NT, k2).transpose(0, 2, 1, 3).reshape(-1, k1 * k2)
                r0 = (a * MT + t0) * NT
                yield RowChunk(r0, r0 + (t1 - t0) * NT, 0, k1 * k2, np.ascontiguousarray(rows))

    def write_rows(self, out: np.ndarray, ch: RowChunk) -> None:
        """Write the row data ``ch.rows`` back into ``out`` (of ``shape``, C-contiguous) at the
        positions :meth:`row_chunks` read them from (padding dropped)."""
        bs = self.block_size
        data = ch.rows
        if bs is None:
            out.reshape(-1)[ch.c0:ch.c1] = data.reshape(-1)[:max(0, min(ch.c1, self.numel) - ch.c0)]
            return
        if isinstance(bs, tuple):
            self._write_tiles(out, ch)
            return
        A, L, B = self._alb()
        nb, k = self.blocks_per_line, self.k
        o3 = out.reshape(A, L, B)
        if not ch.full:  # columns c0:c1 of block j of one line
            line, j = divmod(ch.r0, nb)
            a, b = divmod(line, B)
            lo, hi = j * k + ch.c0, min(j * k + ch.c1, L)
            if hi > lo:
                o3[a, lo:hi, b] = data[0, :hi - lo]
            return
        if ch.r0 % nb or ch.r1 % nb:  # whole blocks of one line
            line, j0 = divmod(ch.r0, nb)
            a, b = divmod(line, B)
            c0 = j0 * k
            c1 = min(c0 + data.size, L)
            o3[a, c0:c1, b] = data.reshape(-1)[:c1 - c0]
            return
        l0, l1 = ch.r0 // nb, ch.r1 // nb
        lines = data.reshape(l1 - l0, nb * k)[:, :L]
        if B == 1:
            o3[l0:l1, :, 0] = lines
            return
        a0, b0 = divmod(l0, B)
        a1, b1 = divmod(l1, B)
        if b0 == 0 and b1 == 0:
            o3[a0:a1] = lines.reshape(a1 - a0, B, L).transpose(0, 2, 1)
        else:
            o3[a0, :, b0:b0 + (l1 - l0)] = lines.T

    def rows_contiguous(self) -> bool:
        """Whether the rows are consecutive runs of a C-order tensor (1-D blocks along the last
        axis, no padding): :meth:`row_chunks` of a native array are views, and so are
        :meth:`direct_rows`."""
        bs = self.block_size
        if bs is None or isinstance(bs, tuple):
            return False
        A, L, B = self._alb()
        return B == 1 and L % self.k == 0

    def direct_rows(self, out: np.ndarray, ch: RowChunk) -> np.ndarray | None:
        """A writable ``(r1 - r0, k)`` view of ``out`` for the rows of ``ch`` when the layout
        maps them onto contiguous memory (blocks along the last axis, no padding), else None."""
        if not (ch.full and self.rows_contiguous() and out.flags.c_contiguous):
            return None
        flat = out.reshape(-1)
        return flat[ch.r0 * self.k:ch.r1 * self.k].reshape(ch.r1 - ch.r0, self.k)

    def _write_tiles(self, out, ch):
        k1, k2 = self.block_size
        A, M, N = self._amn()
        MT, NT = -(-M // k1), -(-N // k2)
        o3 = out.reshape(A, M, N)
        a, t0 = divmod(ch.r0 // NT, MT)
        nt = (ch.r1 - ch.r0) // NT
        seg = ch.rows.reshape(nt, NT, k1, k2).transpose(0, 2, 1, 3).reshape(nt * k1, NT * k2)
        m0, m1 = t0 * k1, min((t0 + nt) * k1, M)
        o3[a, m0:m1, :] = seg[:m1 - m0, :N]
