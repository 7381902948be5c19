"""Explicit 16-lane vector operations for numba kernels (LLVM vector IR through intrinsics).

numba's loop vectoriser handles flat loops, but a loop over 16 elements that runs once per block
(an NVFP4 block) stays scalar or takes a vector path only after runtime checks, and on CPUs that
prefer 256-bit vectors it never uses 512-bit registers. These intrinsics emit the LLVM vector
instructions directly: a ``<16 x i32>`` load, compares against a broadcast scalar, selects,
``llvm.vector.reduce.umax`` and ``llvm.ctpop``. LLVM lowers them on any target (one AVX-512
register, two AVX2 registers, four SSE / NEON registers), so the kernels stay portable.

Every function takes arrays and an element index ``i`` and touches ``[i, i + LANES)``; there is
no bounds check (the caller guarantees the range). ``u`` holds float32 bit patterns (uint32).
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

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


@intrinsic
def vmax16(typingctx, u, i):
    """``max(u[i:i+16] & 0x7FFFFFFF)`` (uint32): the largest float32 magnitude pattern."""
    sig = types.uint32(u, i)

    def codegen(context, builder, signature, args):
        v = _load(context, builder, signature.args[0], args[0], args[1])
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [_V32]),
                                            "llvm.vector.reduce.umax.v16i32")
        return builder.call(fn, [builder.and_(v, _const(MAG_MASK))])
    return sig, codegen


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

