"""The NN cores' coefficient buffers: planning, packing, sizing and decoding, for both formats.

:mod:`.codec` holds the interface (:class:`Codec`, :class:`CoefficientPlan`)
and :func:`codec_for`, which picks the target's format; :mod:`.v7` (zero-run
coded) and :mod:`.v8` (prefix coded) implement it over the declarations in
:mod:`npuc.hw.coef_v7` and :mod:`npuc.hw.coef_v8`; :mod:`.geometry` holds the
types both share, :mod:`.bits` the bit packing and :mod:`.buffers` the buffer
types.  The package depends only on :mod:`npuc.hw`, :mod:`npuc.errors` and
numpy.
"""

from .codec import CODECS, CoefficientPlan, Codec, codec_for, header_bytes, plane_offsets_in_stream
from .geometry import DecodedKernels, KernelGeometry

__all__ = ["CODECS", "CoefficientPlan", "Codec", "codec_for", "header_bytes", "plane_offsets_in_stream",
           "DecodedKernels", "KernelGeometry"]
