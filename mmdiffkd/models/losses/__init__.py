"""Distillation losses besides DiffKD, one per file; importing this package registers them all."""
from .aekt import AEKT
from .cwd import CWD
from .dist import DIST
from .dkd import DKD
from .fitnets import FitNets
from .kd import KD
from .mse import MSE
from .pkd import PKD
from .rtk import RTK
from .vkd import VkD

__all__ = ['AEKT', 'CWD', 'DIST', 'DKD', 'FitNets', 'KD', 'MSE', 'PKD', 'RTK', 'VkD']
