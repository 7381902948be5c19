"""``QuantizedTensor``: element codes + block scales of a block-format tensor, with serialisation.

A frozen value (like torchao's ``MXTensor`` fields, gfloat's ``FormatInfo``): the format, the
codes (whose shape is the tensor's shape), the decoded block scales and their codes, the
second-level tensor scale and the zero points. Its arrays are read-only.

Serialised form (:meth:`QuantizedTensor.to_bytes`, version 2; all integers little-endian)::

    b"LBQT"  uint16 version  uint32 header_len  header (UTF-8 JSON)
    packed element codes  scale codes (uint8/uint16) or FP32 scales  [int32 zero points]
    uint32 CRC-32 (zlib) of everything before it
"""

from __future__ import annotations

import dataclasses
import json
import zlib

import numpy as np

from lowbit.formats import chunking as C
from lowbit.formats._codec import check_codes, decode_codes
from lowbit.formats.block_format import BlockFormat
from lowbit.formats.buffers import empty
from lowbit.formats.float_format import FloatFormat
from lowbit.formats.int_format import IntFormat
from lowbit.formats.layout import BlockLayout, RowChunk
from lowbit.formats.pack import pack, packed_nbytes, unpack

MAGIC = b"LBQT"
VERSION = 2
_HEAD = len(MAGIC) + 2 + 4
_CRC = 4


def _readonly(a):
    if a is None:
        return None
    a = np.asarray(a)
    if a.flags.writeable:
        a = a.view()
        a.setflags(write=False)
    return a


class QuantizedTensor:
    """A tensor in a :class:`~lowbit.formats.block_format.BlockFormat`. Immutable: its
    attributes cannot be set and its arrays are read-only.

    Attributes
    ----------
    codes : element codes (unpacked, one code per array element, uint8/16/32); their shape is
        the tensor's :attr:`shape`
    scales : float64 decoded block scales, ``shape`` with ``axis`` replaced by the block count
        (per tensor: shape ``()``; 2-D tiles: ``(..., ceil(M/k), ceil(N/k))``); NaN for a block
        that held NaN or Inf. When not given (a format with a scale format), the values of
        ``scale_codes`` in ``format.scale``, decoded on first read (the encoder then writes one
        byte per block, not nine)
    scale_codes : codes of the scales in ``format.scale`` (None for FP32 scales)
    tensor_scale : second-level FP32 scale (NVFP4) or None
    zero_point : integer zero points per block (asymmetric INT) or None
    format : the BlockFormat
    axis : the blocked axis (non-negative)
    """

    __slots__ = ("codes", "_scales", "scale_codes", "tensor_scale", "zero_point", "format",
                 "axis")

    def __init__(self, codes, scales=None, scale_codes=None, tensor_scale=None, zero_point=None,
                 format=None, axis=-1, _codes_valid=False):
        """``_codes_valid``: set by the block engine, which wrote every code itself: skips the
        range check of the codes (a pass over the whole tensor)."""
        if not isinstance(format, BlockFormat):
            raise TypeError(f"format must be a BlockFormat, got {type(format).__name__}")
        codes = np.asarray(codes)
        if not (_codes_valid and codes.dtype.kind == "u"):
            codes = check_codes(codes, format.element)
        lay = BlockLayout.make(codes.shape, format.block_size, axis)
        if scales is None and format.scale is None:
            raise ValueError(f"scales must be given for {format.name}: it has FP32 scales (no "
                             f"scale format to decode scale_codes with)")
        if scales is not None:
            scales = np.asarray(scales, dtype=np.float64)
            if scales.shape != lay.scale_shape:
                raise ValueError(f"scales must have shape {lay.scale_shape} for codes of shape "
                                 f"{codes.shape} blocked by {format.block_size} along axis "
                                 f"{lay.axis}, got {scales.shape}")
        for name, a in (("scale_codes", scale_codes), ("zero_point", zero_point)):
            if a is not None and np.shape(a) != lay.scale_shape:
                raise ValueError(f"{name} must have shape {lay.scale_shape}, got {np.shape(a)}")
        if (scale_codes is None) != (format.scale is None):
            raise ValueError(f"scale_codes must be given exactly when the format has a scale "
                             f"format ({format.name}: scale {format.scale})")
        if (zero_point is None) != format.symmetric:
            raise ValueError(f"zero_point must be given exactly for an asymmetric format "
                             f"({format.name}: symmetric={format.symmetric})")
        if (tensor_scale is None) == format.tensor_scale:
            raise ValueError(f"tensor_scale must be given exactly when the format has one "
                             f"({format.name}: tensor_scale={format.tensor_scale})")
        for name, value in (("codes", _readonly(codes)), ("_scales", _readonly(scales)),
                            ("scale_codes", _readonly(scale_codes)),
                            ("zero_point", _readonly(zero_point)), ("format", format),
                            ("axis", lay.axis),
                            ("tensor_scale", None if tensor_scale is None
                             else float(tensor_scale))):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"QuantizedTensor is immutable: cannot set {name!r}")

    def __delattr__(self, name):
        raise AttributeError(f"QuantizedTensor is immutable: cannot delete {name!r}")

    def __reduce__(self):  # pickle / copy: rebuilt through __init__ (attributes cannot be set)
        return (type(self), (self.codes, self._scales, self.scale_codes, self.tensor_scale,
                             self.zero_point, self.format, self.axis, True))

    def __repr__(self):
        return (f"QuantizedTensor(format={self.format.name}, shape={self.shape}, "
                f"axis={self.axis}, tensor_scale={self.tensor_scale})")

    @property
    def scales(self) -> np.ndarray:
        """The decoded block scales (see the class docstring); decoded from ``scale_codes``
        on first read when not given."""
        if self._scales is None:
            object.__setattr__(self, "_scales",
                               _readonly(decode_codes(self.scale_codes, self.format.scale)))
        return self._scales

    @property
    def shape(self) -> tuple:
        """The tensor's shape (that of :attr:`codes`)."""
        return tuple(self.codes.shape)

    @property
    def layout(self) -> BlockLayout:
        return BlockLayout.make(self.shape, self.format.block_size, self.axis)

    def element_values(self) -> np.ndarray:
        """Element values before scaling (float64, shape ``shape``)."""
        return decode_codes(self.codes, self.format.element)

    def dequantize(self, dtype=np.float64) -> np.ndarray:
        """Values ``element * block_scale * tensor_scale`` (``(element - zero_point) *
        block_scale`` for asymmetric INT), each product computed in float64 (exact for every
        lowbit block format: element and scale significands of at most 24 bits together) and
        stored in ``dtype`` (float64, or float32: one rounding). Computed in pieces of
        :data:`lowbit.formats.chunking.CHUNK_ELEMS` elements (memory: the codes and the
        result)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        lay = self.layout
        out = empty(self.shape, dtype)
        s = lay.scales_to_rows(self.scales)
        zp = None if self.zero_point is None else lay.scales_to_rows(self.zero_point)
        codes = self.codes if self.codes.flags.c_contiguous else self.codes.copy(order="C")
        for ch in lay.row_chunks(codes, C.CHUNK_ELEMS):
            v = decode_codes(ch.rows, self.format.element)
            if zp is not None:
                v = v - zp[ch.r0:ch.r1, None]
            v = v * s[ch.r0:ch.r1, None]
            if self.tensor_scale is not None:
                v = v * self.tensor_scale
            direct = lay.direct_rows(out, ch)
            if direct is not None:
                direct[...] = v
            else:
                lay.write_rows(out, RowChunk(ch.r0, ch.r1, ch.c0, ch.c1, v.astype(dtype),
                                             ch.full))
        return out

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def storage_bits(self) -> int:
        """Bits to store the tensor: elements + block scales + zero points + tensor scale."""
        return self.format.storage_bits(self.shape, self.axis)

    @property
    def bits_per_element(self) -> float:
        """E.g. MXFP4 4.25, NVFP4 4.5 + 32 / numel."""
        return self.storage_bits / max(self.numel, 1)

    @property
    def nbytes(self) -> int:
        return -(-self.storage_bits // 8)

    # ---- serialisation ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Self-describing bytes (see the module docstring for the layout)."""
        fmt = self.format
        header = {
            "format": _fmt_to_dict(fmt), "shape": list(self.shape), "axis": self.axis,
            "tensor_scale": self.tensor_scale,
            "scale_shape": list(np.shape(self.scales)),
        }
        h = json.dumps(header).encode()
        parts = [MAGIC, VERSION.to_bytes(2, "little"), len(h).to_bytes(4, "little"), h,
                 pack(self.codes.reshape(-1), fmt.element).tobytes()]
        if self.scale_codes is not None:
            parts.append(np.asarray(self.scale_codes, dtype=_scale_code_dtype(fmt))
                         .reshape(-1).tobytes())
        else:
            parts.append(np.asarray(self.scales, dtype="<f4").reshape(-1).tobytes())
        if self.zero_point is not None:
            parts.append(np.asarray(self.zero_point, dtype="<i4").reshape(-1).tobytes())
        body = b"".join(parts)
        return body + zlib.crc32(body).to_bytes(_CRC, "little")

    @classmethod
    def from_bytes(cls, data) -> "QuantizedTensor":
        """Inverse of :meth:`to_bytes` (``bytes``, ``bytearray`` or a ``memoryview``); a
        ValueError names what is wrong with truncated, corrupted or foreign bytes."""
        try:
            buf = memoryview(data).cast("B")
        except TypeError:
            raise TypeError(f"data must be bytes, bytearray or memoryview, got "
                            f"{type(data).__name__}") from None
        n = buf.nbytes
        if n < _HEAD + _CRC or bytes(buf[:len(MAGIC)]) != MAGIC:
            raise ValueError("data is not a lowbit QuantizedTensor (no 'LBQT' magic)")
        version = int.from_bytes(buf[4:6], "little")
        if version != VERSION:
            raise ValueError(f"QuantizedTensor bytes of version {version}; this lowbit reads "
                             f"version {VERSION}")
        crc = int.from_bytes(buf[n - _CRC:], "little")
        if zlib.crc32(buf[:n - _CRC]) != crc:
            raise ValueError("QuantizedTensor bytes are truncated or corrupted (CRC-32 mismatch)")
        hl = int.from_bytes(buf[6:_HEAD], "little")
        if _HEAD + hl > n - _CRC:
            raise ValueError(f"QuantizedTensor header length {hl} exceeds the data")
        try:
            header = json.loads(bytes(buf[_HEAD:_HEAD + hl]))
            fmt = _fmt_from_dict(header["format"])
            shape = _dims(header["shape"], "shape")
            sshape = _dims(header["scale_shape"], "scale_shape")
            axis = header["axis"]
            tensor_scale = header["tensor_scale"]
        except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"QuantizedTensor header is malformed: {e!r}") from None
        if not isinstance(fmt, BlockFormat):
            raise ValueError("QuantizedTensor header must describe a block format")
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"QuantizedTensor header axis must be an integer, got {axis!r}")
        if sshape != BlockLayout.make(shape, fmt.block_size, axis).scale_shape:
            raise ValueError(f"QuantizedTensor header scale_shape {sshape} does not match shape "
                             f"{shape} for {fmt.name}")
        count = int(np.prod(shape, dtype=np.int64))
        ns = int(np.prod(sshape, dtype=np.int64))
        ncode = packed_nbytes(count, fmt.element)
        sdt = np.dtype(_scale_code_dtype(fmt)) if fmt.scale is not None else np.dtype("<f4")
        need = ncode + ns * sdt.itemsize + (ns * 4 if not fmt.symmetric else 0)
        off = _HEAD + hl
        if off + need != n - _CRC:
            raise ValueError(f"QuantizedTensor payload holds {n - _CRC - off} bytes, "
                             f"{need} expected for shape {shape} in {fmt.name}")
        codes = unpack(np.frombuffer(buf, np.uint8, ncode, off), fmt.element, count)
        off += ncode
        raw = np.frombuffer(buf, sdt, ns, off).reshape(sshape)
        off += ns * sdt.itemsize
        if fmt.scale is not None:
            scale_codes, scales = raw.astype(sdt.newbyteorder("=")), None  # decoded when read
        else:
            scale_codes, scales = None, raw.astype(np.float64)
        zp = None
        if not fmt.symmetric:
            zp = np.frombuffer(buf, "<i4", ns, off).astype(np.int64).reshape(sshape)
        return cls(codes=codes.reshape(shape), scales=scales, scale_codes=scale_codes,
                   tensor_scale=tensor_scale, zero_point=zp, format=fmt, axis=axis)


def _scale_code_dtype(fmt: BlockFormat):
    return np.dtype("<u1") if fmt.scale.bits <= 8 else np.dtype("<u2")


def _dims(v, what) -> tuple:
    if not isinstance(v, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                          and d >= 0 for d in v):
        raise ValueError(f"QuantizedTensor header {what} must be a list of non-negative "
                         f"integers, got {v!r}")
    return tuple(v)


def _fmt_to_dict(fmt) -> dict:
    if fmt.kind == "block":
        if callable(fmt.scale_rule):
            raise ValueError("a BlockFormat with a callable scale_rule cannot be serialised")
        d = {"kind": "block", "name": fmt.name, "element": _fmt_to_dict(fmt.element),
             "scale": None if fmt.scale is None else _fmt_to_dict(fmt.scale),
             "block_size": fmt.block_size, "scale_rule": fmt.scale_rule,
             "tensor_scale": fmt.tensor_scale, "symmetric": fmt.symmetric}
        return d
    d = dataclasses.asdict(fmt)
    d["kind"] = fmt.kind
    return d


_ELEMENT_CLASSES = {"float": FloatFormat, "int": IntFormat}


def _fmt_from_dict(d: dict):
    if not isinstance(d, dict):
        raise TypeError(f"format entry must be an object, got {d!r}")
    d = dict(d)
    kind = d.pop("kind")
    if kind == "block":
        bs = d["block_size"]
        return BlockFormat(element=_fmt_from_dict(d["element"]),
                           scale=None if d["scale"] is None else _fmt_from_dict(d["scale"]),
                           block_size=tuple(bs) if isinstance(bs, list) else bs,
                           scale_rule=d["scale_rule"], tensor_scale=d["tensor_scale"],
                           symmetric=d["symmetric"], name=d["name"])
    if kind not in _ELEMENT_CLASSES:
        raise TypeError(f"format kind must be one of {['block', *_ELEMENT_CLASSES]}, got {kind!r}")
    return _ELEMENT_CLASSES[kind](**d)
