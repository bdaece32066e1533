"""DistributedDataParallel for CPU-only machines (gloo), where DDP refuses ``device_ids``.

MMEngine's runner always passes ``device_ids=[LOCAL_RANK]`` to a DDP wrapper; torch raises for
a module on the CPU. This wrapper drops them, so ``tools/dist_train.sh`` runs unchanged on a
laptop or a CI runner without GPUs. ``tools/train.py`` picks it only when CUDA is unavailable.
"""
from mmengine.model import MMDistributedDataParallel

from mmdiffkd.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` without ``device_ids`` / ``output_device``."""

    def __init__(self, module, device_ids=None, output_device=None, **kwargs):
        super().__init__(module=module, **kwargs)
