"""What a distillation loss returns: a scalar, or named parts that may carry diagnostics."""
from typing import Dict, Optional

from torch import Tensor


class LossParts(dict):
    """Named loss parts (``str -> scalar Tensor``) plus ``diagnostics``, logged but never summed.

    The distiller weights and logs every part as ``loss_<entry>_<part>``; MMEngine sums every
    logged key that contains ``loss`` into the total. ``diagnostics`` are detached scalars that
    explain the parts (DiffKD: the noise adapter's ``gamma``, its ``denoise_gain``); the
    distiller logs them as ``<entry>.<name>`` without a weight, so they reach the text log,
    ``scalars.json`` and TensorBoard but never the total or the gradient. Being a ``dict``,
    ``sum(parts.values())`` is the loss, as for a plain dict of parts.
    """

    def __init__(self, parts: Dict[str, Tensor], diagnostics: Optional[Dict[str, Tensor]] = None):
        super().__init__(parts)
        self.diagnostics = {k: v.detach() for k, v in (diagnostics or {}).items()}
