"""Adaptive noise matching: how much of the student feature is kept at the start of sampling."""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .layers import BatchNorm2d, Bottleneck
from .pointwise import pointwise


class NoiseAdapter(nn.Module):
    """gamma(s) in (0, 1), one per sample; sampling starts at gamma * s + (1 - gamma) * noise.

    kernel_size=3: Bottleneck with reduction 8, global average pooling.
    kernel_size=1: 1x1 convs C -> 2C -> C with BN (and ReLU between), no pooling.
    Then Linear(C, 2), softmax, and the first column.
    """

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size not in (1, 3):
            raise ValueError(f'kernel_size must be 3 (feature maps) or 1 (logits); '
                             f'got {kernel_size!r}.')
        self.kernel_size = kernel_size
        if kernel_size == 3:
            self.block = Bottleneck(channels, reduction=8)
        else:
            self.conv1 = nn.Conv2d(channels, 2 * channels, 1)
            self.bn1 = BatchNorm2d(2 * channels)
            self.conv2 = nn.Conv2d(2 * channels, channels, 1)
            self.bn2 = BatchNorm2d(channels)
        self.fc = nn.Linear(channels, 2)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> gamma: (B,)."""
        if self.kernel_size == 3:
            x = F.adaptive_avg_pool2d(self.block(x), 1)
        else:
            x = F.relu(self.bn1(pointwise(self.conv1, x)), inplace=True)
            x = self.bn2(pointwise(self.conv2, x))
            if x.shape[2:] != (1, 1):
                x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x.flatten(1)).softmax(dim=1)[:, 0]
