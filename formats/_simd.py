"""Explicit 16-lane vector operations for numba kernels (LLVM vector IR through intrinsics).

numba's loop vectoriser handles flat loops, but a loop over 16 elements that runs once per block
(an NVFP4 block) stays scalar or takes a vector path only after runtime checks, and on CPUs that
prefer 256-bit vectors it never uses 512-bit registers. These intrinsics emit the LLVM vector
instructions directly: a ``<16 x i32>`` load, compares against a broadcast scalar, selects,
``llvm.vector.reduce.umax`` and ``llvm.ctpop``. LLVM lowers them on any target (one AVX-512
register, two AVX2 registers, four SSE / NEON registers), so the kernels stay portable.

Every function takes arrays and an element index ``i`` and touches ``[i, i + LANES)``; there is
no bounds check (the caller guarantees the range). ``u`` holds float32 bit patterns (uint32).
:func:`block_maxima`, the block maxima of any block length, is the one numba function built on
them that the NVFP4 and MX passes share.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

from lowbit.formats._arith import _umax32

LANES = 16
"""Elements per vector operation."""
N_THRESHOLDS = 7
"""Thresholds per row of :func:`vcodes16` / :func:`vvalues16` (the 7 rounding boundaries between
the 8 magnitudes of a 4-bit signed format); rows are :data:`ROW` entries apart."""
ROW = 8
MAG_MASK = 0x7FFFFFFF
SIGN_MASK = 0x80000000

_I32 = ir.IntType(32)
_V32 = ir.VectorType(_I32, LANES)
_V8 = ir.VectorType(ir.IntType(8), LANES)


def _const(value, vt=_V32):
    return ir.Constant(vt, [value] * LANES)


def _vec_ptr(context, builder, aryty, ary, idx, vt):
    """Pointer to ``vt`` at element ``idx`` of array ``ary``."""
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [idx]), vt.as_pointer())


def _load(context, builder, aryty, ary, idx, vt=_V32):
    return builder.load(_vec_ptr(context, builder, aryty, ary, idx, vt), align=1)


def _scalar(context, builder, aryty, ary, idx):
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.load(builder.gep(data, [idx]))


def _splat(builder, x):
    vt = ir.VectorType(x.type, LANES)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _offset(builder, base, k):
    return builder.add(base, ir.Constant(base.type, k))


def _reduce_umax(builder, v):
    """The largest lane of the ``<16 x i32>`` vector ``v`` (unsigned)."""
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [_V32]),
                                        "llvm.vector.reduce.umax.v16i32")
    return builder.call(fn, [v])


@intrinsic
def vcount_le16(typingctx, t, i, x):
    """Number of ``t[i:i+16]`` (uint32) that are ``<= x`` (uint32)."""
    sig = types.uint32(t, i, x)

    def codegen(context, builder, signature, args):
        v = _load(context, builder, signature.args[0], args[0], args[1])
        le = builder.icmp_unsigned("<=", v, _splat(builder, args[2]))
        i16 = ir.IntType(16)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i16, [i16]),
                                            "llvm.ctpop.i16")
        return builder.zext(builder.call(fn, [builder.bitcast(le, i16)]), _I32)
    return sig, codegen


@intrinsic
def vmax_below16(typingctx, t, i, limit):
    """The largest of ``t[i:i+16]`` (uint32) below ``limit`` (uint32), 0 if none."""
    sig = types.uint32(t, i, limit)

    def codegen(context, builder, signature, args):
        v = _load(context, builder, signature.args[0], args[0], args[1])
        keep = builder.select(builder.icmp_unsigned("<", v, _splat(builder, args[2])), v,
                              _const(0))
        return _reduce_umax(builder, keep)
    return sig, codegen


@intrinsic
def vstore8_16(typingctx, src, out, o):
    """``out[o:o+16]`` (uint8) = ``src[0:16]`` (uint32, each below 256) in one 16-byte store."""
    if out.dtype != types.uint8:  # a typing error, not a wrong-width store
        return None
    sig = types.void(src, out, o)

    def codegen(context, builder, signature, args):
        v = _load(context, builder, signature.args[0], args[0], ir.Constant(_I32, 0))
        builder.store(builder.trunc(v, _V8),
                      _vec_ptr(context, builder, signature.args[1], args[1], args[2], _V8),
                      align=1)
        return context.get_dummy_value()
    return sig, codegen


def _compares(context, builder, signature, args, a):
    """The 7 masks ``a >= thr[r + j]`` (``args[2]`` = thr, ``args[3]`` = r)."""
    return [builder.icmp_unsigned(">=", a, _splat(builder, _scalar(
        context, builder, signature.args[2], args[2], _offset(builder, args[3], j))))
        for j in range(N_THRESHOLDS)]


@intrinsic
def vcodes16(typingctx, u, i, thr, r, sign_sh, sign_bit, out):
    """``out[i:i+16]`` (uint8) = the number of ``thr[r:r+7]`` (uint32, non-decreasing) that
    ``a = u & 0x7FFFFFFF`` reaches (``a >= thr``), OR ``(u >> sign_sh) & sign_bit`` (uint32
    scalars)."""
    sig = types.void(u, i, thr, r, sign_sh, sign_bit, out)

    def codegen(context, builder, signature, args):
        v = _load(context, builder, signature.args[0], args[0], args[1])
        a = builder.and_(v, _const(MAG_MASK))
        m = _const(0)  # the masks are nested (thresholds increase): a select chain counts them
        for n, ge in enumerate(_compares(context, builder, signature, args, a), start=1):
            m = builder.select(ge, _const(n), m)
        s = builder.and_(builder.lshr(v, _splat(builder, args[4])), _splat(builder, args[5]))
        code = builder.trunc(builder.or_(m, s), _V8)
        builder.store(code, _vec_ptr(context, builder, signature.args[6], args[6], args[1], _V8),
                      align=1)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def vvalues16(typingctx, u, i, thr, r, vals, out):
    """``out[i:i+16]`` (uint32 float32 bits) = ``vals[r + n]`` (uint32), ``n`` the number of
    ``thr[r:r+7]`` (non-decreasing) that ``a = u & 0x7FFFFFFF`` reaches, OR the sign bit of
    ``u``."""
    sig = types.void(u, i, thr, r, vals, out)

    def codegen(context, builder, signature, args):
        v = _load(context, builder, signature.args[0], args[0], args[1])
        a = builder.and_(v, _const(MAG_MASK))

        def val(n):
            return _splat(builder, _scalar(context, builder, signature.args[4], args[4],
                                           _offset(builder, args[3], n)))
        res = val(0)
        for n, ge in enumerate(_compares(context, builder, signature, args, a), start=1):
            res = builder.select(ge, val(n), res)
        res = builder.or_(res, builder.and_(v, _const(SIGN_MASK)))
        builder.store(res, _vec_ptr(context, builder, signature.args[5], args[5], args[1], _V32),
                      align=1)
        return context.get_dummy_value()
    return sig, codegen


BLOCKS_PER_STORE = 4
"""Blocks whose 16 one-byte codes :func:`vcodes16x4` writes with one 64-byte store."""
BYTE = 8
SIGN_SH_MIN = BYTE * (BLOCKS_PER_STORE - 1)
"""The smallest ``sign_sh`` :func:`vcodes16x4` takes (the code's sign bit at bit 7 or below)."""


@intrinsic
def vcodes16x4(typingctx, u, i, thr, cs, b, sign_sh, sign_bit, out):
    """:func:`vcodes16` for the 4 blocks of 16 at ``u[i : i + 64]``, block ``q`` with row
    ``thr[cs[b + q] * ROW : ...]``; the 64 one-byte codes in one store to ``out[i : i + 64]``.

    Same result as 4 calls of :func:`vcodes16` (``r = cs[b + q] * ROW``), in fewer vector
    operations (the loop was bound by them, not by memory):

    * the count ``#{j < 7 : a >= thr[r + j]}`` by a 3-step binary search over the non-decreasing
      row (``a >= t3``, then ``t1`` or ``t5``, then one of ``t0, t2, t4, t6``, each chosen by a
      select on the earlier answers): 3 compares instead of 7. A count over a non-decreasing
      sequence is what a binary search returns, equal thresholds included;
    * the 4 blocks' codes are built in the 4 bytes of one 32-bit lane (block ``q`` in byte
      ``q``: each step adds ``bit << 8q``, the sign ``(u >> (sign_sh - 8q)) & (sign_bit << 8q)``)
      and one byte shuffle puts them in element order. Requires a code below 256 and
      ``sign_sh >=`` :data:`SIGN_SH_MIN` (the sign at bit 7 or below), which
      :func:`lowbit.formats._arith_amax.amax_encode_rows` checks.
    """
    if out.dtype != types.uint8:
        return None
    sig = types.void(u, i, thr, cs, b, sign_sh, sign_bit, out)

    def codegen(context, builder, signature, args):
        uty, _, thrty, csty, _, _, _, outty = signature.args
        ary_u, idx, ary_thr, ary_cs, b0, sh, sb, ary_out = args
        i64 = ir.IntType(64)
        acc = _const(0)
        for q in range(BLOCKS_PER_STORE):
            c = _scalar(context, builder, csty, ary_cs, _offset(builder, b0, q))
            r = builder.mul(builder.zext(c, i64), ir.Constant(i64, ROW))
            v = _load(context, builder, uty, ary_u, _offset(builder, idx, LANES * q))
            a = builder.and_(v, _const(MAG_MASK))

            def t(j, r=r):
                return _splat(builder, _scalar(context, builder, thrty, ary_thr,
                                               _offset(builder, r, j)))
            sign = builder.and_(
                builder.lshr(v, _splat(builder, builder.sub(sh, ir.Constant(sh.type, BYTE * q)))),
                _splat(builder, builder.shl(sb, ir.Constant(sb.type, BYTE * q))))
            acc = builder.or_(acc, sign)
            ge1 = builder.icmp_unsigned(">=", a, t(3))
            acc = builder.select(ge1, builder.add(acc, _const(4 << BYTE * q)), acc)
            ge2 = builder.icmp_unsigned(">=", a, builder.select(ge1, t(5), t(1)))
            acc = builder.select(ge2, builder.add(acc, _const(2 << BYTE * q)), acc)
            t3 = builder.select(ge1, builder.select(ge2, t(6), t(4)),
                                builder.select(ge2, t(2), t(0)))
            ge3 = builder.icmp_unsigned(">=", a, t3)
            acc = builder.select(ge3, builder.add(acc, _const(1 << BYTE * q)), acc)
        v8 = ir.VectorType(ir.IntType(8), BLOCKS_PER_STORE * LANES)
        order = ir.Constant(ir.VectorType(_I32, BLOCKS_PER_STORE * LANES),
                            [e * BLOCKS_PER_STORE + q for q in range(BLOCKS_PER_STORE)
                             for e in range(LANES)])
        bytes_ = builder.bitcast(acc, v8)
        res = builder.shuffle_vector(bytes_, ir.Constant(v8, ir.Undefined), order)
        builder.store(res, _vec_ptr(context, builder, outty, ary_out, idx, v8), align=1)
        return context.get_dummy_value()
    return sig, codegen


def _halves(g: int):
    """Shuffle masks pairing two 16-lane vectors: the lane groups of size ``g`` at even and at
    odd positions of their 32-lane concatenation."""
    lo = [i for i in range(2 * LANES) if (i // g) % 2 == 0]
    hi = [i for i in range(2 * LANES) if (i // g) % 2 == 1]
    return (ir.Constant(ir.VectorType(_I32, LANES), lo),
            ir.Constant(ir.VectorType(_I32, LANES), hi))


def _umax(builder, a, b):
    return builder.select(builder.icmp_unsigned(">", a, b), a, b)


def _block_maxima(per_block: int):
    """Codegen of ``out[o + b] = max(u[i + w*b : i + w*(b+1)] & 0x7FFFFFFF)`` for the 16
    consecutive blocks ``b`` of ``w = 16 * per_block`` elements: each block's vectors maxed
    lane-wise, then a transposed max tree over the 16 blocks (15 vector maxima and 30
    two-source shuffles instead of 16 horizontal reductions)."""
    def codegen(context, builder, signature, args):
        loads = [builder.and_(_load(context, builder, signature.args[0], args[0],
                                    _offset(builder, args[1], LANES * j)), _const(MAG_MASK))
                 for j in range(LANES * per_block)]
        vs = []
        for b in range(LANES):
            v = loads[b * per_block]
            for j in range(1, per_block):
                v = _umax(builder, v, loads[b * per_block + j])
            vs.append(v)
        g = LANES // 2
        while len(vs) > 1:
            lo, hi = _halves(g)
            vs = [_umax(builder, builder.shuffle_vector(a, b, lo), builder.shuffle_vector(a, b, hi))
                  for a, b in zip(vs[0::2], vs[1::2])]
            g //= 2
        builder.store(vs[0], _vec_ptr(context, builder, signature.args[2], args[2], args[3],
                                      _V32), align=1)
        return context.get_dummy_value()
    return codegen


@intrinsic
def vmax16x16(typingctx, u, i, out, o):
    """``out[o + b] = max(u[i+16b : i+16b+16] & 0x7FFFFFFF)`` for ``b`` in 0..15 (uint32): the
    largest magnitude pattern of 16 consecutive 16-element blocks (:func:`_block_maxima`)."""
    return types.void(u, i, out, o), _block_maxima(1)


@intrinsic
def vmax32x16(typingctx, u, i, out, o):
    """``out[o + b] = max(u[i+32b : i+32b+32] & 0x7FFFFFFF)`` for ``b`` in 0..15 (uint32): the
    largest magnitude pattern of 16 consecutive 32-element blocks (MX; :func:`_block_maxima`)."""
    return types.void(u, i, out, o), _block_maxima(2)


@intrinsic
def vperiodic_codes16(typingctx, am, o, M, p, out):
    """Scale codes of 16 amax patterns ``am[o:o+16]`` by the periodic rule of a regular binade
    range: ``min((e << p[0]) + p[1] + #{j < 8 : mant >= M[j]}, p[2])`` (``e = am >> 23``,
    ``mant = am & 0x7FFFFF``, ``M`` non-decreasing, int32 arithmetic) into ``out[0:16]``;
    returns the lanes (bit ``b``) whose ``e`` lies outside ``[p[3], p[4]]`` (they, and NaN /
    Inf blocks with ``e = 255 > p[4]``, need another rule)."""
    sig = types.uint32(am, o, M, p, out)

    def codegen(context, builder, signature, args):
        zero = ir.Constant(_I32, 0)
        a = _load(context, builder, signature.args[0], args[0], args[1])

        def par(j):
            return _splat(builder, _scalar(context, builder, signature.args[3], args[3],
                                           ir.Constant(_I32, j)))
        e = builder.lshr(a, _const(23))
        mant = builder.and_(a, _const(0x7FFFFF))
        cnt = _const(0)
        for j in range(ROW):
            mj = _splat(builder, _scalar(context, builder, signature.args[2], args[2],
                                         ir.Constant(_I32, j)))
            cnt = builder.select(builder.icmp_unsigned(">=", mant, mj), _const(j + 1), cnt)
        c = builder.add(builder.add(builder.shl(e, par(0)), par(1)), cnt)
        cmax = par(2)
        c = builder.select(builder.icmp_unsigned(">", c, cmax), cmax, c)
        builder.store(c, _vec_ptr(context, builder, signature.args[4], args[4], zero, _V32),
                      align=1)
        off = builder.or_(builder.icmp_unsigned("<", e, par(3)),
                          builder.icmp_unsigned(">", e, par(4)))
        return builder.zext(builder.bitcast(off, ir.IntType(16)), _I32)
    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def block_maxima(u, i0, nblocks, k, out, o):
    """``out[o + b] = max(u[i0 + k*b : i0 + k*(b+1)] & 0x7FFFFFFF)`` (uint32: the largest
    float32 magnitude pattern, NaN / Inf patterns included) for ``b < nblocks``, any block
    length ``k``: 16 blocks of 16 or 32 at a time by :func:`vmax16x16` / :func:`vmax32x16`, the
    others element by element. Arguments ``i0``, ``nblocks``, ``k``, ``o`` are uint64 (numba
    adds a negative-index wraparound to signed indices). Inlined: a call per group of blocks
    would cost more than the group's work."""
    lanes = np.uint64(LANES)
    b = np.uint64(0)
    if k == lanes or k == np.uint64(2 * LANES):
        while b + lanes <= nblocks:
            if k == lanes:
                vmax16x16(u, i0 + b * k, out, o + b)
            else:
                vmax32x16(u, i0 + b * k, out, o + b)
            b += lanes
    for bb in range(b, nblocks):
        j0 = i0 + bb * k
        m = np.uint32(0)
        for j in range(j0, j0 + k):
            m = _umax32(u[j] & np.uint32(MAG_MASK), m)
        out[o + bb] = m
