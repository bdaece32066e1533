"""Building blocks shared by the DiffKD networks: a tiny-batch-safe BatchNorm and the Bottleneck."""
from contextlib import contextmanager

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .pointwise import pointwise


# Fewer values per channel than this in a training batch (B * H * W < 4) and BatchNorm2d
# normalises each sample over its channels and positions instead (see BatchNorm2d). With two
# values per channel a batch-statistics BatchNorm outputs +-1 whatever the input and its input
# gradient grows like 1 / |x1 - x2|: DiffKD on batch-2 logits, or on a 1x1 FPN level at batch 2,
# diverged within a few SGD steps (tests/models/diffkd/test_diffkd_tiny_batches.py). The
# authors' reference cases have at least four values per channel (logits at batch 4), stay exact.
MIN_BATCH_VALUES = 4


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d``, except when a training batch holds fewer than
    :data:`MIN_BATCH_VALUES` values per channel (B * H * W < 4: logits of 1-3 images, a 1x1 FPN
    level at batch <= 3).

    Per-channel batch statistics of so few values are degenerate (one value: zero variance,
    where the reference crashes; two: the output is +-1 whatever the input, with an unbounded
    input gradient). Such a batch is normalised per sample over all its channels and positions
    (a layer normalisation, ``F.layer_norm`` over (C, H, W), C * H * W values), then the layer's
    per-channel ``weight`` and ``bias`` apply; the running statistics are neither used nor
    updated. The output is invariant to the input's scale, as with batch statistics, and the
    gradient stays bounded. (Normalising with the running statistics instead was tried: it
    keeps the gradient bounded but not the scale, and batch-2 logits of a ResNet-18 student at
    mmpretrain's lr 0.1 still went non-finite within 15 SGD steps for 2 of 3 seeds.)

    With four or more values per channel, and in eval mode, this is exactly ``nn.BatchNorm2d``;
    ``convert_sync_batchnorm`` still recognises it (it is an ``nn.BatchNorm2d``).
    """

    # Set by ``frozen_running_stats``: normalise with batch statistics but leave the running
    # ones alone (a checkpointed forward being recomputed must not update them twice).
    freeze_running_stats = False

    def forward(self, x: Tensor) -> Tensor:
        if self.training and values_per_channel(x) < MIN_BATCH_VALUES:
            out = F.layer_norm(x, x.shape[1:], eps=self.eps)
            if self.affine:
                out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
            return out
        if self.training and self.freeze_running_stats:
            # batch statistics; throwaway copies take the update (same autograd graph as below)
            mean, var = self.running_mean, self.running_var
            return F.batch_norm(x, None if mean is None else mean.clone(),
                                None if var is None else var.clone(),
                                self.weight, self.bias, True, 0.1, self.eps)
        return super().forward(x)


def values_per_channel(x: Tensor) -> int:
    """B * H * W of a (B, C, H, W) batch: how many values each channel's statistics see."""
    return x.shape[0] * x.shape[2] * x.shape[3] if x.dim() == 4 else x.shape[0]


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
