"""``QuantizedTensor``: element codes + block scales of a block-format tensor, with serialisation."""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass

import numpy as np

_MAGIC = b"LBQT1\n"


@dataclass
class QuantizedTensor:
    """A tensor in a :class:`~lowbit.formats.block_format.BlockFormat`.

    Attributes
    ----------
    codes : element codes, shape ``shape`` (unpacked, one code per array element)
    scales : float64 decoded block scales, ``shape`` with ``axis`` replaced by the block count
        (per tensor: shape ``()``; 2-D tiles: ``(..., M/k, N/k)``); NaN for a NaN block
    scale_codes : codes of the scales in the scale format (None for FP32 scales)
    tensor_scale : second-level FP32 scale (NVFP4) or None
    zero_point : integer zero points per block (asymmetric INT) or None
    """

    codes: np.ndarray
    scales: np.ndarray
    scale_codes: np.ndarray | None
    tensor_scale: float | None
    zero_point: np.ndarray | None
    format: object
    shape: tuple
    axis: int

    def element_values(self) -> np.ndarray:
        """Element values before scaling (float64, shape ``shape``)."""
        from lowbit.formats.convert import decode

        return decode(self.codes, self.format.element)

    def dequantize(self) -> np.ndarray:
        """float64 values ``element * block_scale * tensor_scale`` (exact products)."""
        from lowbit.formats.block_engine import dequantize_rows

        return dequantize_rows(self)

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
        """Self-describing bytes: a JSON header, packed element codes, scales, zero points."""
        from lowbit.formats.pack import pack

        fmt = self.format
        header = {
            "format": _fmt_to_dict(fmt), "shape": list(self.shape), "axis": self.axis,
            "tensor_scale": self.tensor_scale,
            "scale_shape": list(np.shape(self.scales)),
            "has_scale_codes": self.scale_codes is not None,
            "has_zero_point": self.zero_point is not None,
        }
        buf = io.BytesIO()
        h = json.dumps(header).encode()
        buf.write(_MAGIC + len(h).to_bytes(4, "little") + h)
        buf.write(pack(self.codes.reshape(-1), fmt.element).tobytes())
        if self.scale_codes is not None:
            buf.write(np.asarray(self.scale_codes, dtype=np.uint8 if fmt.scale.bits <= 8
                                 else np.uint16).reshape(-1).tobytes())
        else:
            buf.write(np.asarray(self.scales, dtype=np.float32).reshape(-1).tobytes())
        if self.zero_point is not None:
            buf.write(np.asarray(self.zero_point, dtype=np.int32).reshape(-1).tobytes())
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "QuantizedTensor":
        from lowbit.formats.convert import decode
        from lowbit.formats.pack import packed_nbytes, unpack

        if not data.startswith(_MAGIC):
            raise ValueError("data is not a lowbit QuantizedTensor (bad magic)")
        off = len(_MAGIC)
        hl = int.from_bytes(data[off:off + 4], "little")
        off += 4
        header = json.loads(data[off:off + hl])
        off += hl
        fmt = _fmt_from_dict(header["format"])
        shape = tuple(header["shape"])
        n = int(np.prod(shape, dtype=np.int64))
        nb = packed_nbytes(n, fmt.element)
        codes = unpack(np.frombuffer(data, np.uint8, nb, off), fmt.element, n).reshape(shape)
        off += nb
        sshape = tuple(header["scale_shape"])
        ns = int(np.prod(sshape, dtype=np.int64))
        scale_codes = None
        if header["has_scale_codes"]:
            dt = np.uint8 if fmt.scale.bits <= 8 else np.uint16
            scale_codes = np.frombuffer(data, dt, ns, off).reshape(sshape).copy()
            off += ns * np.dtype(dt).itemsize
            scales = decode(scale_codes, fmt.scale)
        else:
            scales = np.frombuffer(data, np.float32, ns, off).astype(np.float64).reshape(sshape)
            off += ns * 4
        zp = None
        if header["has_zero_point"]:
            zp = np.frombuffer(data, np.int32, ns, off).astype(np.int64).reshape(sshape)
        return cls(codes=codes, scales=scales, scale_codes=scale_codes,
                   tensor_scale=header["tensor_scale"], zero_point=zp, format=fmt, shape=shape,
                   axis=header["axis"])


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


def _fmt_from_dict(d: dict):
    from lowbit.formats.block_format import BlockFormat
    from lowbit.formats.float_format import FloatFormat
    from lowbit.formats.int_format import IntFormat

    d = dict(d)
    kind = d.pop("kind")
    if kind == "block":
        bs = d["block_size"]
        return BlockFormat(element=_fmt_from_dict(d["element"]),
                           scale=None if d["scale"] is None else _fmt_from_dict(d["scale"]),
                           block_size=tuple(bs) if isinstance(bs, list) else bs,
                           scale_rule=d["scale_rule"], tensor_scale=d["tensor_scale"],
                           symmetric=d["symmetric"], name=d["name"])
    return (FloatFormat if kind == "float" else IntFormat)(**d)
