"""``winograd_last``: ``winograd`` reading channels-last operands along the grain.

``winograd`` first copies a chunk of its input into two parity planes, then transforms them
block by block (:mod:`.winograd`). For channels-first callers the forward pieces (the forward, and
the input gradient as the forward of ``dy``) keep those planes channels first; copying a
channels-last caller's array into them reads across the grain. Here they are channels last
(``(positions, C)``, as the weight gradient's already are), so that copy moves runs of channels,
and BLAS reads the transformed blocks transposed. Results stay channels-first arrays (the caller
gets their channels-last views, as through the shared path).

``auto`` never picks it for channels-first calls (``auto_candidate = False``);
:mod:`convgrad.native_last` picks it for channels-last ones where ``auto`` runs ``winograd`` on
layers of ``MIN_CHANNELS`` channels or more. The weight gradient also keeps ``dy`` in tile layout and
``dM`` channels last.
"""

from __future__ import annotations

from ..spec import ConvSpec
from .registry import register
from .winograd import Winograd

#: Channels (input and output) from which the channels-last planes pay.
MIN_CHANNELS = 32


class WinogradLast(Winograd):
    name = "winograd_last"
    auto_candidate = False  # channels-first calls keep winograd; native_last picks this one
    channels_last = True
    planes_last = True

    def prefers_channels_last(self, spec: ConvSpec, op: str, itemsize: int = 4) -> bool:
        """Where ``auto`` runs ``winograd`` on channels-first arrays, from ``MIN_CHANNELS`` channels.

        CPU ms on one thread (load average 5-6, so +-10 %), channels-last caller, transposed views
        into ``winograd`` -> this one (channels first for reference), forward / dx / dw: layer a
        122/122/117 -> 105/105/109 (106/102/109); f 86/83/82 -> 75/73/74 (81/77/86); but the
        3-D layer i, 16 -> 32 channels, 66/74/80 -> 68/71/83 (63/63/66): no gain.
        """
        from . import choose  # (the package imports this module while it is being set up)

        return min(spec.in_channels, spec.out_channels) >= MIN_CHANNELS and choose(spec, op, itemsize).name == "winograd"


register(WinogradLast())
