"""Linear autoencoder that compresses the teacher feature DiffKD diffuses on (cuts its cost)."""
from typing import Tuple

import torch.nn as nn
from torch import Tensor

from .layers import BatchNorm2d
from .pointwise import pointwise


class LinearAutoEncoder(nn.Module):
    """Encoder 1x1 conv + BN (C_t -> C_ae), decoder 1x1 conv (C_ae -> C_t), no activation."""

    def __init__(self, channels: int, latent_channels: int):
        super().__init__()
        self.enc_conv = nn.Conv2d(channels, latent_channels, 1)
        self.enc_bn = BatchNorm2d(latent_channels)
        self.dec_conv = nn.Conv2d(latent_channels, channels, 1)

    def encode(self, x: Tensor) -> Tensor:
        return self.enc_bn(pointwise(self.enc_conv, x))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Returns (latent, reconstruction)."""
        latent = self.encode(x)
        return latent, pointwise(self.dec_conv, latent)
