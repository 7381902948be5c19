"""Dense packing of sub-byte codes.

* 4-bit codes (FP4 E2M1, INT4): two per byte; ``order="low_first"`` (default) puts element 0 in
  the low nibble (OCP / ONNX / PTX convention), ``"high_first"`` in the high nibble.
* 6-bit codes (FP6): four per three bytes, little-endian bit stream (element 0 in bits 0-5 of
  byte 0) for ``low_first``; there is no common standard for FP6 packing.
* 2-bit codes: four per byte; 8/16/32-bit codes: plain little-endian.
* Any other width: a little-endian bit stream.
A ragged tail is padded with zero bits.
"""

from __future__ import annotations

import numpy as np

from lowbit.formats.registry import resolve

PACK_ORDERS = ("low_first", "high_first")


def _bits(fmt) -> int:
    f = resolve(fmt)
    if f.kind == "block":
        f = f.element
    return f.bits


def packed_nbytes(count: int, fmt) -> int:
    b = _bits(fmt)
    if b in (8, 16, 32):
        return count * b // 8
    if b > 8 and b < 16:
        return count * 2
    if b > 16:
        return count * 4
    return -(-count * b // 8)


def pack(codes, fmt, order: str = "low_first") -> np.ndarray:
    """Pack a 1-D (or any, flattened) array of codes into a uint8 array."""
    if order not in PACK_ORDERS:
        raise ValueError(f"order must be one of {list(PACK_ORDERS)}, got {order!r}")
    b = _bits(fmt)
    c = np.asarray(codes).reshape(-1)
    if c.dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array, got dtype {c.dtype}")
    if c.size and (c.min() < 0 or int(c.max()) >= (1 << b)):
        raise ValueError(f"codes must be in 0..{(1 << b) - 1} for a {b}-bit format")
    if b in (8, 16, 32) or b > 8:
        dt = np.uint8 if b <= 8 else np.uint16 if b <= 16 else np.uint32
        return c.astype(np.dtype(dt).newbyteorder("<")).view(np.uint8)
    c = c.astype(np.uint8)
    if b == 4:
        if c.size % 2:
            c = np.append(c, np.uint8(0))
        lo, hi = c[0::2], c[1::2]
        if order == "high_first":
            lo, hi = hi, lo
        return (lo | (hi << 4)).astype(np.uint8)
    # general little-endian bit stream (2-, 6-, odd widths)
    bits = ((c[:, None] >> np.arange(b, dtype=np.uint8)) & 1).astype(np.uint8).reshape(-1)
    pad = (-bits.size) % 8
    if pad:
        bits = np.append(bits, np.zeros(pad, np.uint8))
    out = np.packbits(bits.reshape(-1, 8), axis=1, bitorder="little").reshape(-1)
    if order == "high_first":
        out = np.packbits(np.unpackbits(out.reshape(-1, 1), axis=1, bitorder="little")[:, ::-1],
                          axis=1, bitorder="little").reshape(-1)
    return out


def _byte_buffer(buf) -> np.ndarray:
    """``buf`` as a flat uint8 array: bytes-like objects, or integer arrays whose values are
    bytes (0..255); TypeError / ValueError otherwise (no silent wrap or truncation)."""
    if isinstance(buf, (bytes, bytearray, memoryview)):
        return np.frombuffer(buf, dtype=np.uint8)
    a = np.asarray(buf)
    if a.dtype.kind not in "iu":
        raise TypeError(f"buf must be bytes or an integer array of byte values, got dtype "
                        f"{a.dtype}")
    if a.size and (int(a.min()) < 0 or int(a.max()) > 255):
        raise ValueError(f"buf must hold byte values 0..255, got values in "
                         f"{int(a.min())}..{int(a.max())}")
    return a.astype(np.uint8, copy=False).reshape(-1)


def unpack(buf, fmt, count: int, order: str = "low_first") -> np.ndarray:
    """Inverse of :func:`pack`: ``count`` codes (uint8/uint16/uint32) from packed bytes."""
    if order not in PACK_ORDERS:
        raise ValueError(f"order must be one of {list(PACK_ORDERS)}, got {order!r}")
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"count must be an integer, got {count!r} ({type(count).__name__})")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    count = int(count)
    b = _bits(fmt)
    buf = _byte_buffer(buf)
    need = packed_nbytes(count, fmt)
    if buf.size < need:
        raise ValueError(f"buffer holds {buf.size} bytes, {need} needed for {count} codes")
    if b in (8, 16, 32) or b > 8:
        dt = np.dtype(np.uint8 if b <= 8 else np.uint16 if b <= 16 else np.uint32).newbyteorder("<")
        return buf[:need].view(dt)[:count].astype(dt.newbyteorder("="))
    if b == 4:
        lo, hi = buf[: need] & 0xF, buf[: need] >> 4
        if order == "high_first":
            lo, hi = hi, lo
        return np.stack([lo, hi], axis=1).reshape(-1)[:count].astype(np.uint8)
    data = buf[:need]
    if order == "high_first":
        data = np.packbits(np.unpackbits(data.reshape(-1, 1), axis=1, bitorder="little")[:, ::-1],
                           axis=1, bitorder="little").reshape(-1)
    bits = np.unpackbits(data, bitorder="little")[: count * b].reshape(count, b)
    return (bits.astype(np.uint8) << np.arange(b, dtype=np.uint8)).sum(axis=1).astype(np.uint8)
