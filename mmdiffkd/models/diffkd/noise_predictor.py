"""The diffusion model of DiffKD: predicts the noise in a feature given its timestep."""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .layers import BatchNorm2d, Bottleneck
from .pointwise import pointwise

# Rows of the time embedding. The authors size it 1280 whatever the schedule length; we keep it
# (checkpoint compatibility) and require num_train_timesteps <= rows.
TIME_EMBED_ROWS = 1280


class NoisePredictor(nn.Module):
    """eps_theta(x_t, t): add a learned per-channel embedding of t, then a small conv net.

    kernel_size=3 (feature maps): Bottleneck, Bottleneck, 1x1 conv, BN.
    kernel_size=1 (logits as (B, K, 1, 1)): 1x1 convs C -> 4C -> C -> 4C -> C with BN and ReLU,
    the same MLP applied per position.
    """

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size not in (1, 3):
            raise ValueError(f'kernel_size must be 3 (feature maps) or 1 (logits); '
                             f'got {kernel_size!r}.')
        self.channels = channels
        self.kernel_size = kernel_size
        self.time_embed = nn.Embedding(TIME_EMBED_ROWS, channels)
        if kernel_size == 3:
            self.block1 = Bottleneck(channels)
            self.block2 = Bottleneck(channels)
            self.out_conv = nn.Conv2d(channels, channels, 1)
            self.out_bn = BatchNorm2d(channels)
        else:
            hidden = 4 * channels
            self.conv1 = nn.Conv2d(channels, hidden, 1)
            self.bn1 = BatchNorm2d(hidden)
            self.conv2 = nn.Conv2d(hidden, channels, 1)
            self.bn2 = BatchNorm2d(channels)
            self.conv3 = nn.Conv2d(channels, hidden, 1)
            self.bn3 = BatchNorm2d(hidden)
            self.conv4 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor, t: Optional[Tensor]) -> Tensor:
        """x: (B, C, H, W); t: a 0-d or (B,) LongTensor on x's device. Returns eps, like x.

        ``t=None``: ``x`` already holds the time embedding (the sampling loop of ``DiffKD`` adds
        it together with its own update), and only the network runs.
        """
        if t is not None:
            x = x + self.time_embed(t).view(-1, self.channels, 1, 1)
        if self.kernel_size == 3:
            return self.out_bn(pointwise(self.out_conv, self.block2(self.block1(x))))
        x = F.relu(self.bn1(pointwise(self.conv1, x)), inplace=True)
        x = self.bn2(pointwise(self.conv2, x))
        x = F.relu(self.bn3(pointwise(self.conv3, x)), inplace=True)
        return pointwise(self.conv4, x)
