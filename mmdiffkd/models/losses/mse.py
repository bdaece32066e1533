"""MSE: the plainest feature-matching baseline."""
import torch.nn.functional as F
from torch import Tensor

from mmdiffkd.registry import MODELS

from ._utils import check_same_shape, upcast
from .base import DistillLoss


@MODELS.register_module()
class MSE(DistillLoss):
    """Mean squared error ``mean((s - t)^2)`` over every element; shapes must match.

    No adapter: when widths differ use ``FitNets`` (1x1 adapter + MSE) or ``VkD``.
    """

    record_dims = (2, 3, 4, 5)

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> Tensor:
        check_same_shape('MSE', student, teacher)
        return F.mse_loss(*upcast(student, teacher))
