"""The generic block engine: quantize a tensor to any :class:`BlockFormat`.

Steps (OCP MX v1.0 section 6.3 for the MX formats; NVFP4 per the TE / torchao recipe):

1. Lay the tensor out as ``(n_blocks, k)`` rows (:class:`BlockLayout`), zero-padding a ragged tail.
2. Per block: NaN or Inf anywhere -> the block's scale is NaN (torchao: non-finite amax gives
   scale 0xFF) and its element codes are 0; the whole block decodes to NaN.
3. Scale from the block's finite amax by ``scale_rule`` (:mod:`lowbit.formats.block_scales`).
4. Elements: ``P_i = round(V_i / X)`` with one rounding. Power-of-two scales are applied exactly
   inside the rounding kernel (exponent shift); other scales divide in float64 first
   (``fl64(V_i / (s * S))``, exact to well below the element grid for float32 inputs).
   Values beyond the element max saturate (OCP MX 6.3: "clamped to +-max"), unless ``overflow``
   says otherwise; ``overflow="error"`` tests the scaled value and names the block.

Memory: the tensor is read in pieces of whole rows (:meth:`BlockLayout.row_chunks`, about
:data:`lowbit.formats.chunking.CHUNK_ELEMS` elements) and each piece's codes / values go straight
to the output, so a conversion needs its input, its output and a few pieces. A format whose
block scales depend on other blocks (tensor scale, callable rule) or rows longer than a piece
(per-tensor, long per-channel rows) take one statistics pass first. Results do not depend on the
piece size (``tests/formats/test_chunking.py``). A strided input is copied once to C order.

Fast paths (each proved equal to the exact kernel): float32 / float16 input with a power-of-two
scale rule over an element format of the branch-free path (MX FP8 / FP6 / FP4) takes the fused
pass of :mod:`lowbit.formats._arith_block` (block statistics, scale and element rounding in one
pass over each piece); other float32 input with power-of-two scales rounds through the
element's table with the scale applied as an exponent shift (:mod:`lowbit.formats._lut`);
float32 / float16 input to an ``"amax"`` format over a 4-bit float element (NVFP4) takes the
threshold pass of :mod:`lowbit.formats._arith_amax` (every block's maximum and the tensor
scale, then scale and element codes by comparisons, no division; both fused paths write scale
codes, which the QuantizedTensor decodes into scales when they are read); other general scales divide in float64
and round branch-free (:mod:`lowbit.formats._arith_scaled`, INT groups
:mod:`lowbit.formats._arith_intgroup`) or through the float64-source table. The environment
variable ``LOWBIT_SLOW_FORMATS=1`` (:data:`lowbit.formats.convert.SLOW_FORMATS_ENV`) turns them
all off (exact kernel only), for comparison.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from lowbit.formats import _kernel as K
from lowbit.formats import chunking as C
from lowbit.formats._amax_tables import F32_INF, amax_params, amax_tables
from lowbit.formats._arith import arith_params
from lowbit.formats._arith_amax import amax_encode_rows, block_amax_bits, flat_amax_bits
from lowbit.formats._arith_block import (
    mx_encode_rows,
    rule_params,
    scale_code_table,
    scale_table,
)
from lowbit.formats._arith_intgroup import divisors_ok, int_params, int_scaled_encode
from lowbit.formats._arith_scaled import GROUP_ELEMS as SCALED_GROUP
from lowbit.formats._arith_scaled import scaled_encode, scaled_params
from lowbit.formats._codec import kernel_params, value_table
from lowbit.formats._lut import (
    compact_table,
    lut_block_encode,
    lut_encode,
    lut_scaled_encode,
    lut_width,
)
from lowbit.formats.block_format import BlockFormat
from lowbit.formats.block_scales import (
    RowStats,
    ScalePlan,
    block_plan,
    scale_codes,
    tensor_scale,
)
from lowbit.formats.buffers import empty
from lowbit.formats.convert import (
    check_errors,
    code_dtype,
    run_encode,
    slow_formats,
    value_dtype,
)
from lowbit.formats.layout import BlockLayout, RowChunk
from lowbit.formats.qtensor import QuantizedTensor

_NO_CODES = np.zeros(0, np.uint8)
_NO_BITS = np.zeros(0, np.uint32)
_NO_SCALES = np.zeros(0, np.float64)
FUSED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32))
"""Input dtypes of the fused path (float16 is converted to float32 per piece, exactly)."""


@lru_cache(maxsize=64)
def _fused_cached(fmt: BlockFormat, P_bytes: bytes):
    R = rule_params(fmt)
    if R is None:
        return None
    Qc = arith_params(fmt.element, P_bytes, False)
    Qv = arith_params(fmt.element, P_bytes, True)
    if Qc is None or Qv is None:
        return None
    stab = scale_code_table(fmt, scale_codes) if fmt.scale is not None else np.zeros(0, np.uint8)
    if stab is None:
        return None
    return R, Qc, Qv, stab, value_table(fmt.element), scale_table(fmt)


def _fused_params(fmt: BlockFormat, P):
    """``(R, Qc, Qv, scale code table, element value table, scale table)`` of
    :func:`lowbit.formats._arith_block.mx_encode_rows` when the format and policies take the
    fused path, else None."""
    return _fused_cached(fmt, P.tobytes())


def check_blocked_axis(layout: BlockLayout, fmt: BlockFormat, axis) -> None:
    """ValueError when 1-D blocks of more than one element would run along a length-1 axis of
    a tensor with more elements (every block would hold one element: almost surely the wrong
    axis)."""
    bs = fmt.block_size
    if isinstance(bs, int) and bs != 1 and layout.shape[layout.axis] == 1 and layout.numel > 1:
        bpe = fmt.element.bits + fmt.scale_bits
        raise ValueError(f"axis={axis} of shape {layout.shape} has length 1: {fmt.name} blocks "
                         f"along it would hold one element each ({bpe} bits per element); pass "
                         f"the axis to block along (axis= one of the dimensions longer than 1)")


class _Run:
    """One conversion: format, policies, outputs and the per-block results."""

    def __init__(self, x, fmt, axis, want_codes, want_values, policies):
        self.fmt, self.el = fmt, fmt.element
        self.layout = BlockLayout.make(x.shape, fmt.block_size, axis)
        check_blocked_axis(self.layout, fmt, axis)
        self.x = x if x.flags.c_contiguous else x.copy(order="C")
        p = dict(policies)
        seed = C.check_seed(p.pop("seed", None))
        self.kw = p
        self.stochastic = p["rounding"] in K.STOCHASTIC_ROUNDING
        self.kw["key"] = C.stochastic_key(seed) if self.stochastic else np.uint64(0)
        self.codes = empty(x.shape, code_dtype(self.el)) if want_codes else None
        self.values = empty(x.shape, value_dtype(x.dtype)) if want_values else None
        self.scales = self.bad = None  # per-block results (encode), allocated by run()
        self.coded_scales = False  # whether the scales are left to QuantizedTensor to decode
        self.zp = None if fmt.symmetric else np.zeros(self.layout.n_blocks if want_codes else 0,
                                                     np.int64)
        self.ts = None
        self.P = kernel_params(self.el, p["rounding"], p["overflow"], p["nan_input"],
                               p["subnormal_output"], p["sr_bits"])
        o = p["overflow"]
        self.could_fail = o == "error" or (p["nan_input"] == "error" and not self.el.has_nan) or (
            self.el.kind == "float" and not self.el.signed)
        self.slow = slow_formats()
        self.fused = None if self.slow or x.dtype.newbyteorder("=") not in FUSED_DTYPES else (
            _fused_params(fmt, self.P))
        self.amax = None if self.slow or x.dtype.newbyteorder("=") not in FUSED_DTYPES else (
            amax_params(fmt, self.P, self.kw))
        self.amax_tab = None  # per-tensor tables of the amax pass (after the tensor scale)
        self.block_amax = None  # the amax pass's block maxima (uint32 patterns), when stored
        self.fused_run = False  # whether run() took a fused path
        self.fused_scodes = None  # scale codes per block, written by the fused path

    # ---- driver ---------------------------------------------------------------------------
    def run(self):
        lay, fmt = self.layout, self.fmt
        k = lay.k
        piece = C.CHUNK_ELEMS
        if fmt.scale_rule == "mse":
            piece = max(piece, k)  # candidates are scored on whole blocks
        asym = not fmt.symmetric
        stats = None  # per-row statistics of the whole tensor, when a piece cannot see a row
        plan_all = None
        if k > piece or fmt.block_size is None or callable(fmt.scale_rule):
            stats = RowStats.empty(lay.n_blocks, asym)
            parts = C.run_pieces(lambda ch: (ch.r0, RowStats.of(C.native(ch.rows), asym)),
                                 lay.row_chunks(self.x, piece))
            for r0, part in parts:  # in row order: column pieces of one row combine exactly
                stats.merge(r0, part)
            if fmt.tensor_scale:
                self.ts = tensor_scale(stats.amax, fmt)
            if callable(fmt.scale_rule):  # a callable sees every block's amax at once
                plan_all = block_plan(stats, fmt, self.ts)
        elif fmt.tensor_scale:  # only the tensor amax is global: one max per piece
            if self.amax is not None:
                amaxes = self._tensor_amax(piece)
            else:
                amaxes = C.run_pieces(lambda ch: RowStats.of(C.native(ch.rows), asym).amax.max(
                    initial=0.0), lay.row_chunks(self.x, piece))
            self.ts = tensor_scale(np.asarray(amaxes, dtype=np.float64), fmt)
        keep_scales = self.codes is not None
        whole = stats is None and lay.numel > 0  # fused paths: whole blocks, an element or more
        fused = self.fused if whole else None
        amax_tab = None
        if self.amax is not None and whole:
            amax_tab = self.amax_tab = amax_tables(fmt, self.amax, self.ts)
        self.fused_run = fused is not None or amax_tab is not None
        # the fused paths write scale codes; a QuantizedTensor decodes them when read
        self.coded_scales = self.fused_run and fmt.scale is not None
        self.scales = np.empty(lay.n_blocks if keep_scales and not self.coded_scales else 0)
        self.bad = np.zeros(lay.n_blocks if keep_scales and not self.fused_run else 0, bool)
        if self.fused_run and keep_scales and fmt.scale is not None:
            sdtype = fused[3].dtype if fused is not None else code_dtype(fmt.scale)
            self.fused_scodes = np.empty(lay.n_blocks, sdtype)

        def one(ch):
            rows = C.native(ch.rows)
            if fused is not None and ch.full:
                self._fused_piece(ch, rows)
                return
            if amax_tab is not None and ch.full:
                self._amax_piece(ch, rows)
                return
            st = stats.rows(ch.r0, ch.r1) if stats is not None else RowStats.of(rows, asym)
            if st.bad.any():
                rows = np.where(st.bad[:, None], 0, rows).astype(rows.dtype)
            if plan_all is not None:
                plan = plan_all.rows(ch.r0, ch.r1)
            else:
                plan = block_plan(st, fmt, self.ts, rows, self.kw, ch.r0 * k, k)
            self._encode(ch, rows, st.bad, plan)
            if keep_scales:
                self.scales[ch.r0:ch.r1] = plan.scales
                self.bad[ch.r0:ch.r1] = st.bad
                if self.zp is not None:
                    self.zp[ch.r0:ch.r1] = plan.zp

        if (fused is not None or amax_tab is not None) and self.x.dtype == np.float32 and (
                lay.rows_contiguous()):
            # the pieces are views of the input and outputs (no staging memory): fewer, larger
            # ones cost less dispatch; a few per thread keep the threads balanced
            piece = max(piece, C.direct_piece(lay.numel))
        pieces = lay.row_chunks(self.x, piece)
        if self.block_amax is not None:
            # the second pass over the input: last pieces first, which the first pass read
            # last and a cache smaller than the tensor still holds (in order, an LRU cache
            # would have dropped each piece just before it is read again)
            pieces = reversed(list(pieces))
        C.run_pieces(one, pieces)
        if keep_scales and lay.numel == 0 and lay.n_blocks:  # a per-tensor block, no element
            plan = block_plan(RowStats.empty(lay.n_blocks, asym), fmt, self.ts,
                              np.zeros((lay.n_blocks, 0), self.x.dtype), self.kw, 0, 0)
            self.scales[:] = plan.scales  # as for a block of zeros
            if self.zp is not None:
                self.zp[:] = plan.zp
        return self

    def _tensor_amax(self, piece) -> np.ndarray:
        """The finite block amaxes (float32, any number of them) whose max is the tensor amax,
        for the amax pass. Rows of a native float32 tensor that are views: every block's
        maximum, kept in :attr:`block_amax` for the second pass (which then skips that work;
        4 bytes per block); other float32 tensors: a flat max (one slice per thread, views: no
        memory), block by block only if it meets a NaN / Inf."""
        lay, x = self.layout, self.x
        if x.dtype == np.float32 and lay.rows_contiguous() and x.size:
            am = self.block_amax = np.empty(lay.n_blocks, np.uint32)
            bits = C.run_pieces(lambda ch: block_amax_bits(
                ch.rows.reshape(-1).view(np.uint32), ch.r1 - ch.r0, lay.k, am[ch.r0:ch.r1]),
                lay.row_chunks(x, max(piece, C.direct_piece(lay.numel))))
            return np.asarray(bits, np.uint32).view(np.float32)
        if x.dtype == np.float32 and x.size:
            u = x.reshape(-1).view(np.uint32)
            step = -(-u.size // max(numba.get_num_threads(), 1))
            bits = np.asarray(C.run_pieces(flat_amax_bits, (u[s:s + step] for s in range(
                0, u.size, step))), np.uint32)
            if bits.max() < F32_INF:
                return bits.view(np.float32)
        bits = C.run_pieces(lambda ch: block_amax_bits(
            C.native(ch.rows).reshape(-1).view(np.uint32), ch.r1 - ch.r0, lay.k,
            np.empty(ch.r1 - ch.r0, np.uint32)), lay.row_chunks(x, piece))
        return np.asarray(bits, np.uint32).view(np.float32)

    # ---- one piece ------------------------------------------------------------------------
    def _outputs(self, ch: RowChunk, nr, kc):
        """``[(buffer, output, written in place)]`` for codes and values (buffer None when that
        output is not wanted)."""
        bufs = []
        for out in (self.codes, self.values):
            if out is None:
                bufs.append((None, None, True))
                continue
            view = self.layout.direct_rows(out, ch)
            bufs.append((np.empty((nr, kc), out.dtype), out, False) if view is None
                        else (view, out, True))
        return bufs

    def _write_back(self, ch: RowChunk, bufs):
        for buf, out, in_place in bufs:
            if not in_place:
                self.layout.write_rows(out, RowChunk(ch.r0, ch.r1, ch.c0, ch.c1, buf, ch.full))

    def _fused_piece(self, ch: RowChunk, rows):
        """The piece through :func:`lowbit.formats._arith_block.mx_encode_rows` (statistics,
        power-of-two scales and elements in one pass)."""
        nr, kc = rows.shape
        R, Qc, Qv, stab, vtab, ptab = self.fused
        bufs = self._outputs(ch, nr, kc)
        cbuf, vbuf = bufs[0][0], bufs[1][0]
        c_out = _NO_CODES if cbuf is None else cbuf.reshape(-1)
        v_out = _NO_BITS if vbuf is None else vbuf.reshape(-1).view(np.uint32)
        e = np.empty(nr, np.int64)
        sl = slice(ch.r0, ch.r1)
        bad = np.empty(nr, np.bool_)
        s_out = self.scales[sl] if self.scales.size else _NO_SCALES
        sc_out = self.fused_scodes[sl] if self.fused_scodes is not None else stab[:0]
        flat = rows.reshape(-1)
        nbad = mx_encode_rows(flat.view(np.uint32), nr, kc, R, Qc, Qv, self.P, vtab, stab, ptab,
                              c_out, v_out, e, s_out, sc_out, bad)
        if nbad and self.could_fail:
            clean = np.where(bad[:, None], 0, rows).astype(rows.dtype).reshape(-1)
            self._raise_error(clean, nr, kc, ScalePlan(e=e), ch)
        self._write_back(ch, bufs)

    def _amax_piece(self, ch: RowChunk, rows):
        """The piece through :func:`lowbit.formats._arith_amax.amax_encode_rows` (block amax,
        scale code and elements by threshold comparisons)."""
        nr, kc = rows.shape
        T = self.amax_tab
        bufs = self._outputs(ch, nr, kc)
        cbuf, vbuf = bufs[0][0], bufs[1][0]
        sl = slice(ch.r0, ch.r1)
        amax_encode_rows(rows.reshape(-1).view(np.uint32), nr, kc, T,
                         _NO_BITS if self.block_amax is None else self.block_amax[sl],
                         _NO_CODES if cbuf is None else cbuf.reshape(-1),
                         _NO_BITS if vbuf is None else vbuf.reshape(-1).view(np.uint32),
                         _NO_CODES if self.fused_scodes is None else self.fused_scodes[sl])
        self._write_back(ch, bufs)

    def _encode(self, ch: RowChunk, rows, bad, plan: ScalePlan):
        nr, kc = rows.shape
        offset = ch.r0 * self.layout.k + ch.c0
        bufs = self._outputs(ch, nr, kc)
        cbuf, vbuf = bufs[0][0], bufs[1][0]
        flat = rows.reshape(-1)
        done = False
        if not self.stochastic and not self.slow:
            done = self._fast(flat, nr, kc, bad, plan, cbuf, vbuf, ch)
        if not done:
            self._exact(flat, nr, kc, bad, plan, offset, cbuf, vbuf, ch)
        self._write_back(ch, bufs)

    def _fast(self, flat, nr, kc, bad, plan, cbuf, vbuf, ch) -> bool:
        el, o = self.el, self.kw["overflow"]
        c_out = _NO_CODES if cbuf is None else cbuf.reshape(-1)
        v_out = np.zeros(0, flat.dtype) if vbuf is None else vbuf.reshape(-1)
        ts = 1.0 if plan.ts is None else float(plan.ts)
        if plan.e is not None:
            if flat.dtype != np.float32 or lut_width(el, 32, o) is None:
                return False
            kk, table = compact_table(el, self.P.tobytes(), 32)
            if v_out.size and v_out.dtype != np.float32:
                return False
            nbad = lut_block_encode.serial(flat.view(np.uint32), nr, kc, plan.e.astype(np.int64),
                                           bad, kk, table, self.P, value_table(el), c_out, v_out)
        elif plan.zp is None and (q := scaled_params(el, self.P.tobytes())) is not None:
            nbuf = max(SCALED_GROUP, kc)
            scaled_encode(flat, nr, kc, plan.div, plan.s, ts, bad, q, c_out, v_out,
                          np.empty(nbuf), np.empty(nbuf))
            nbad = 0  # clamped overflow, no NaN input: no error sentinel
        elif plan.zp is None and (iq := int_params(self.P.tobytes())) is not None and \
                divisors_ok(plan.div):
            int_scaled_encode(flat, nr, kc, plan.div, plan.s, ts, bad, iq, c_out, v_out)
            nbad = 0  # saturated overflow, no NaN input: no error sentinel
        elif lut_width(el, 64, o) is None:
            return False
        elif plan.zp is None:
            kk, table = compact_table(el, self.P.tobytes(), 64)
            y = np.empty(flat.shape[0], np.float64)
            nbad = lut_scaled_encode.serial(flat, nr, kc, plan.div, plan.s, ts, bad, kk, table,
                                            value_table(el), y, y.view(np.uint64), c_out, v_out)
        else:  # asymmetric: y = fl64(fl64(x / s) + zp), rounded through the float64 table
            kk, table = compact_table(el, self.P.tobytes(), 64)
            y, _ = self._scaled_input(flat, nr, kc, plan)
            codes = np.empty(y.shape[0], table.dtype)
            nbad = lut_encode.serial(y.view(np.uint64), np.uint64(52 - kk),
                                     np.uint64((1 << (52 - kk)) - 1), table, 1 << el.bits, codes)
            codes = np.where(np.repeat(bad, kc), 0, codes).reshape(nr, kc)
            if cbuf is not None:
                cbuf[...] = codes
            if vbuf is not None:
                v = (value_table(el)[codes] - plan.zp[:, None]) * plan.s[:, None]
                vbuf[...] = np.where(bad[:, None], np.nan, v)
        if nbad and self.could_fail:
            self._raise_error(flat, nr, kc, plan, ch)
        return True

    def _scaled_input(self, flat, nr, kc, plan):
        """(element inputs as the kernel sees them, per-row shift or None)."""
        if plan.e is not None:
            return flat, plan.e.astype(np.int64)
        y = flat.astype(np.float64).reshape(nr, kc) / plan.div[:, None]
        if plan.zp is not None:
            y = y + plan.zp[:, None]
        return y.reshape(-1), None

    def _exact(self, flat, nr, kc, bad, plan, offset, cbuf, vbuf, ch):
        src, shift = self._scaled_input(flat, nr, kc, plan)
        codes, vals = run_encode(src, self.el, shift=shift, rowlen=max(kc, 1),
                                 want_values=vbuf is not None, offset=offset, check=False,
                                 **self.kw)
        if self.could_fail and (codes[~np.repeat(bad, kc)] < 0).any():
            self._raise_error(flat, nr, kc, plan, ch, codes)
        if cbuf is not None:
            cbuf[...] = np.where(bad[:, None], 0, codes.reshape(nr, kc))
        if vbuf is not None:
            v = vals.reshape(nr, kc)
            if plan.e is not None:
                v = np.ldexp(v, plan.e[:, None])
            elif plan.zp is not None:
                v = (v - plan.zp[:, None]) * plan.s[:, None]
            else:
                v = v * plan.s[:, None]
                if plan.ts is not None:
                    v = v * plan.ts
            vbuf[...] = np.where(bad[:, None], np.nan, v)

    def _raise_error(self, flat, nr, kc, plan, ch, codes=None):
        src, shift = self._scaled_input(flat, nr, kc, plan)
        if codes is None:
            codes, _ = run_encode(src, self.el, shift=shift, rowlen=max(kc, 1), check=False,
                                  **self.kw)
        scales = plan.scales

        def where(i):
            r, c = divmod(i, kc)
            scaled = float(flat[i]) / float(scales[r]) if plan.e is not None else float(src[i])
            return (f"input {float(flat[i])!r} (element {ch.c0 + c} of block {ch.r0 + r} of "
                    f"{self.layout.n_blocks}, block scale {float(scales[r])!r}) scaled to "
                    f"{scaled!r}")

        check_errors(codes, src, self.el, self.kw["overflow"], self.kw["nan_input"], where=where)

    # ---- results --------------------------------------------------------------------------
    def qtensor(self) -> QuantizedTensor:
        lay, fmt = self.layout, self.fmt
        scales = self.scales
        if self.fused_run:
            sc = self.fused_scodes  # scales of NaN / Inf blocks are NaN already
        else:
            sc = None if fmt.scale is None else scale_codes(self.scales, self.bad, fmt.scale)
            scales[self.bad] = np.nan
        if self.coded_scales:
            scales = None  # decoded from the scale codes when read (QuantizedTensor.scales)
        return QuantizedTensor(
            codes=self.codes, scales=None if scales is None else lay.scales_from_rows(scales),
            scale_codes=None if sc is None else lay.scales_from_rows(sc),
            tensor_scale=self.ts,
            zero_point=None if self.zp is None else lay.scales_from_rows(self.zp),
            format=fmt, axis=lay.axis, _codes_valid=True)


def encode_blocks(x, fmt: BlockFormat, axis=-1, **policies) -> QuantizedTensor:
    """Quantize ``x`` to the block format; see the module docstring for the algorithm."""
    xa = C.as_float_array(x)
    return _Run(xa, fmt, axis, True, False, policies).run().qtensor()


def quantize_blocks(x, fmt: BlockFormat, axis=-1, **policies) -> np.ndarray:
    """Dequantized values of ``x`` in ``fmt`` (float32 for float16 / float32 input, float64 for
    float64), equal to ``encode_blocks(x, fmt).dequantize()`` rounded once to that dtype."""
    xa = C.as_float_array(x)
    return _Run(xa, fmt, axis, False, True, policies).run().values
