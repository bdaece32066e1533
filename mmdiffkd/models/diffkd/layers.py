"""Building blocks shared by the DiffKD networks: a batch-1-safe BatchNorm and the Bottleneck."""
from contextlib import contextmanager

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .pointwise import pointwise


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that falls back to its running statistics when a training batch holds
    a single value per channel (B * H * W == 1, e.g. one sample of logits).

    The batch variance of one value is zero (the reference crashes there), so the running
    estimate is the only meaningful normaliser; it is used as is and left un-updated. Whenever a
    channel sees two or more values this is exactly ``nn.BatchNorm2d``. ``convert_sync_batchnorm``
    still recognises it (it is an ``nn.BatchNorm2d``).
    """

    # Set by ``frozen_running_stats``: normalise with batch statistics but leave the running
    # ones alone (a checkpointed forward being recomputed must not update them twice).
    freeze_running_stats = False

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.freeze_running_stats and not self._single_value(x):
            # batch statistics; throwaway copies take the update (same autograd graph as below)
            mean, var = self.running_mean, self.running_var
            return F.batch_norm(x, None if mean is None else mean.clone(),
                                None if var is None else var.clone(),
                                self.weight, self.bias, True, 0.1, self.eps)
        if self.training and self._single_value(x):
            if self.running_mean is None:
                raise ValueError(f'{type(self).__name__} got a single value per channel '
                                 f'(input shape {tuple(x.shape)}) and has no running statistics '
                                 f'to fall back on; use track_running_stats=True or batch >= 2.')
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)

    @staticmethod
    def _single_value(x: Tensor) -> bool:
        return x.dim() == 4 and x.shape[0] * x.shape[2] * x.shape[3] == 1


@contextmanager
def frozen_running_stats(module: nn.Module):
    """Within the block, the ``BatchNorm2d`` layers of ``module`` do not update their statistics."""
    layers = [m for m in module.modules() if isinstance(m, BatchNorm2d)]
    for m in layers:
        m.freeze_running_stats = True
    try:
        yield
    finally:
        for m in layers:
            m.freeze_running_stats = False


class Bottleneck(nn.Module):
    """ResNet bottleneck with biased convs: 1x1 reduce, 3x3, 1x1 expand, plus the identity.

    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; DiffKD keeps conv
    biases and uses no ReLU after the sum.
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        if channels // reduction < 1:
            raise ValueError(f'Bottleneck: channels={channels} is smaller than its reduction '
                             f'{reduction}; need channels >= {reduction}.')
        mid = channels // reduction
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.bn1 = BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn2 = BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, channels, 1)
        self.bn3 = BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(pointwise(self.conv1, x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        return self.bn3(pointwise(self.conv3, out)).add_(x)  # BN keeps no output: in place
