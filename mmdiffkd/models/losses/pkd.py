"""PKD: Cao, Zhang, Gao, Cheng, Cheng, Cheng, "PKD: General Distillation Framework for Object
Detectors via Pearson Correlation Coefficient", NeurIPS 2022, arXiv 2207.02039."""
import torch.nn.functional as F
from torch import Tensor

from mmdiffkd.registry import MODELS

from ._utils import check_ndim, upcast
from .base import DistillLoss


def standardize_channels(x: Tensor, eps: float) -> Tensor:
    """Zero mean, unit (population) variance per channel over batch and positions."""
    dims = [d for d in range(x.dim()) if d != 1]
    mean = x.mean(dim=dims, keepdim=True)
    std = x.var(dim=dims, unbiased=False, keepdim=True).sqrt()
    return (x - mean) / (std + eps)


@MODELS.register_module()
class PKD(DistillLoss):
    """Feature imitation with the Pearson correlation coefficient (for FPN levels).

    Both (B, C, H, W) maps are standardised per channel over batch and positions, then matched
    by MSE halved::

        s^ = (s - mean_c(s)) / std_c(s),  t^ likewise
        L = 1/2 * mean((s^ - t^)^2) = mean_c (1 - r_c(s, t))

    where r_c is channel c's Pearson correlation over the B*H*W values: the loss ignores the
    magnitude of either feature and keeps only its pattern. The identity is exact because the
    standard deviation is the population one (MMRazor's PKDLoss uses the unbiased one, which
    scales the loss by (n-1)/n). Channels must match (FPN levels share one width; use FitNets or
    VkD to change width). Maps of different grids are reconciled by the declaration's
    ``resize='student'`` (bilinear, MMRazor's PKD default) or ``resize='teacher'``.

    Args:
        eps (float): added to the standard deviation. Default 1e-6.

    Declaration weight: 6 per FPN level in MMRazor's PKD configs (``configs/distill/mmdet/pkd``).
    """

    record_dims = (4,)

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> Tensor:
        check_ndim('PKD', 'student', student, (4,))
        check_ndim('PKD', 'teacher', teacher, (4,))
        if student.shape != teacher.shape:
            raise ValueError(f'PKD: student {tuple(student.shape)} and teacher '
                             f'{tuple(teacher.shape)} must have the same shape (PKD has no '
                             f'adapter between widths; maps of different grids: declare '
                             f'resize="student" or resize="teacher").')
        student, teacher = upcast(student, teacher)
        s = standardize_channels(student, self.eps)
        t = standardize_channels(teacher, self.eps)
        return F.mse_loss(s, t) / 2
