"""The DiffKD core: scheduler, noise predictor, noise adapter, autoencoder and the loss."""
from .autoencoder import LinearAutoEncoder
from .diffkd import DiffKD
from .layers import BatchNorm2d, Bottleneck
from .noise_adapter import NoiseAdapter
from .noise_predictor import NoisePredictor
from .reference import from_reference, to_reference
from .scheduler import DDIMScheduler

__all__ = ['DiffKD', 'DDIMScheduler', 'NoisePredictor', 'NoiseAdapter', 'LinearAutoEncoder',
           'Bottleneck', 'BatchNorm2d', 'from_reference', 'to_reference']
