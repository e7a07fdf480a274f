"""``tapgemm_last``: ``tapgemm`` with its buffers and results channels last, for channels-last callers.

``tapgemm`` multiplies shifted slices of a padded copy of the input (:mod:`.tapgemm`). Its
buffers can hold positions as rows (``(positions, channels)``); for channels-first callers it
uses that only for the weight gradient's input (:data:`.tapgemm.CHANNELS_LAST`), because copying a
channels-first array into such a buffer reads across the grain. A channels-last caller's arrays
are the other way round: here every buffer whose side a caller's array fills or receives is
channels last (:data:`SIDES`), so the copies in and out move runs of channels, and the results
are the ``(N, C, *spatial)`` views of C-contiguous ``(N, *spatial, C)`` arrays. The products are
the same (BLAS reads the transposed blocks); a stack of taps (few input channels) still copies
the input side channels first, as ``tapgemm`` does.

``auto`` never picks it for channels-first calls (``auto_candidate = False``);
:mod:`convgrad.native_last` picks it for channels-last ones where :meth:`TapGemmLast.prefers_channels_last`
says it measured faster than ``tapgemm``/``winograd``/``rowgemm`` through transposed views.
"""

from __future__ import annotations

import numpy as np

from ..spec import ConvSpec, conv_spec
from .depthwise_last import channels_last_result
from .registry import register
from .tapgemm import TapGemm, stack_size

#: ``(input side, output side)`` channels last, per operation.
SIDES = {"forward": (True, True), "grad_input": (True, True), "grad_weight": (True, True)}


class TapGemmLast(TapGemm):
    name = "tapgemm_last"
    auto_candidate = False  # channels-first calls keep tapgemm; native_last picks this one
    fallback = False
    channels_last = True
    sides = SIDES

    def result(self, shape: tuple[int, ...], dtype, zero: bool = False) -> np.ndarray:
        """The ``(N, C, *spatial)`` view of a fresh C-contiguous ``(N, *spatial, C)`` array."""
        return channels_last_result((shape[0], *shape[2:], shape[1]), dtype, zero)[1]

    def prefers_channels_last(self, spec: ConvSpec, op: str, itemsize: int = 4) -> bool:
        """Where ``auto`` runs ``tapgemm`` on channels-first arrays, except a forward with stacks of taps.

        CPU ms on one thread, channels-last caller, transposed views into ``tapgemm`` against this
        (channels first for reference): layer b 61/58/60 -> 58/58/58 (57/58/60) for forward/dx/dw,
        h 299/298/299 -> 259/262/268 (272/262/277), d's dx and dw 108/111 -> 82/81 (76/78); but d's
        forward, whose stacked input side is channels first anyway, 75 -> 80, and the layers where
        ``auto`` picks ``winograd`` (i: 64/66/77 -> 79/75/87) or ``rowgemm`` (g1) lose.
        """
        from . import choose  # (the package imports this module while it is being set up)

        if choose(spec, op, itemsize).name != "tapgemm":
            return False
        return not (op == "forward" and stack_size(spec, op) > 1)

    def examples(self):
        return (conv_spec((2, 5, 7, 6), (8, 5, 3, 3), padding=1),
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=2, padding=1, groups=2),
                conv_spec((3, 3, 12, 11), (8, 3, 5, 5), stride=(2, 1), padding=2),  # a stack of taps
                conv_spec((2, 8, 30), (8, 8, 9), padding=4))


register(TapGemmLast())
