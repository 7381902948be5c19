"""The calibration unit set: which units are synthesized, and the train / held-out split.

Each entry is ``(kind, params, split)``; split is "train", "test" (held out from fitting)
or "range" (outside the model's validity range: integer operands of 2 bits, which ABC
collapses to a handful of gates; reported, excluded from fit and MAPE).
Held-out units interleave with the training widths (interpolation) plus the widest units
(mild extrapolation) so the reported held-out MAPE is honest.
"""

from __future__ import annotations


def _fp_fixed(e: int, m: int) -> int:
    return 2 * (m + 1) + 2 * (2 ** e - 2) + 1


def calibration_units() -> list[tuple[str, dict, str]]:
    u: list[tuple[str, dict, str]] = []
    for signed in (True, False):
        for n in range(2, 9):
            split = "test" if n in (3, 7) else ("range" if n == 2 else "train")
            u.append(("int_mult", dict(bits_a=n, bits_b=n, signed=signed), split))
    u.append(("int_mult", dict(bits_a=4, bits_b=8, signed=True), "test"))
    u.append(("int_mult", dict(bits_a=2, bits_b=8, signed=True), "range"))
    u.append(("int_mult", dict(bits_a=3, bits_b=8, signed=True), "train"))
    for n, acc in ((2, 12), (3, 14), (4, 16), (5, 18), (6, 20), (8, 24), (8, 32), (4, 24)):
        split = "test" if (n, acc) in ((3, 14), (8, 32)) else ("range" if n == 2 else "train")
        u.append(("int_mac", dict(bits_a=n, bits_b=n, signed=True, acc_bits=acc), split))
    fps = [(2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3), (3, 4), (4, 2), (4, 3), (5, 2)]
    held = {(2, 2), (3, 3), (4, 2)}
    for e, m in fps:
        u.append(("fp_mult", dict(ebits=e, mbits=m), "test" if (e, m) in held else "train"))
    for e, m in fps:
        if (e, m) in ((3, 1),):
            continue
        u.append(("fp_mac", dict(ebits=e, mbits=m, acc_bits=_fp_fixed(e, m) + 8),
                  "test" if (e, m) in held else "train"))
    # FP-accumulator MACs (lowbit.hw only; fits the "fpa" feature)
    u += [("fp_acc_mac", dict(a="fp8_e4m3", acc="fp32"), "train"),
          ("fp_acc_mac", dict(a="fp8_e4m3", acc="fp16"), "train"),
          ("fp_acc_mac", dict(a="fp4_e2m1", acc="fp16"), "test")]
    return u


HW_ONLY_KINDS = ("fp_acc_mac",)

# the few units re-synthesized by the test-suite (generic gates target, each < ~1 s)
SMOKE_UNITS = [
    ("int_mult", dict(bits_a=3, bits_b=3, signed=True)),
    ("int_mult", dict(bits_a=5, bits_b=5, signed=False)),
    ("fp_mult", dict(ebits=2, mbits=1)),
    ("int_mac", dict(bits_a=4, bits_b=4, signed=True, acc_bits=16)),
]
