"""FitNets: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015."""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmdiffkd.registry import MODELS

from ._utils import check_channels, check_ndim, require_channels, upcast
from .base import DistillLoss

DISTANCES = ('mse', 'normalized_l2')


@MODELS.register_module()
class FitNets(DistillLoss):
    """Hint learning: a learned regressor maps the student feature to the teacher's width.

    ``r`` is a 1x1 convolution (with bias) for (B, C, H, W) maps, or a linear layer for (B, C)
    vectors and (B, N, C) tokens (channels last), optionally followed by BatchNorm (``norm``)
    and a ReLU (``relu``). The paper's regressor is a convolution; a 1x1 kernel keeps the
    spatial grid, so student and teacher maps must share H, W. The regressor is training-only:
    it lives in the loss, not in the student. Then, by ``distance``::

        'mse':            L = mean((r(s) - t)^2)                    (over every element)
        'normalized_l2':  L = 1/B sum_i || r(s)_i / |r(s)_i| - t_i / |t_i| ||^2
                          (each sample flattened and L2-normalised; MMRazor's ``L2Loss``)

    The references' regressor is ``norm=True, relu=True`` (conv + BN + ReLU): mdistiller's
    ``ConvReg`` and MMRazor's ``ConvModuleConnector`` with ``norm_cfg=dict(type='BN')``.
    Their conv bias (mdistiller has one, MMRazor not) is cancelled by the BatchNorm in training.
    Weights: mdistiller's FitNet = ``distance='mse'`` with its ``FEAT_WEIGHT`` as the
    declaration weight (100 on CIFAR-100); MMRazor's FitNets config = ``distance=
    'normalized_l2'`` with its ``loss_weight`` (10). MMRazor's ``L2Loss`` is not a multiple of
    the MSE, so its weight has no factor to ``distance='mse'`` (docs/methods.md).

    Args:
        student_channels (int): student width (filled by the distiller's dry forward).
        teacher_channels (int): teacher width (filled likewise).
        norm (bool): BatchNorm after the regressor's conv / linear layer. Default False
            (the paper's plain regressor).
        relu (bool): ReLU after that (after the BatchNorm when ``norm``). Default False.
        distance (str): 'mse' (default) or 'normalized_l2'.
    """

    takes_channels = True
    record_dims = (2, 3, 4)

    def __init__(self, student_channels: Optional[int] = None,
                 teacher_channels: Optional[int] = None, norm: bool = False,
                 relu: bool = False, distance: str = 'mse'):
        super().__init__()
        require_channels('FitNets', student_channels, teacher_channels)
        if distance not in DISTANCES:
            raise ValueError(f'FitNets: distance={distance!r} is not one of {DISTANCES}.')
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.relu, self.distance = bool(relu), distance
        # One weight serves 1x1 conv (maps) and linear (vectors / tokens).
        self.regressor = nn.Linear(student_channels, teacher_channels)
        # BatchNorm1d covers (B, C) and (B, C, L): maps are viewed as (B, C, H*W).
        self.norm = nn.BatchNorm1d(teacher_channels) if norm else None

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> Tensor:
        check_ndim('FitNets', 'student', student, (2, 3, 4))
        check_ndim('FitNets', 'teacher', teacher, (2, 3, 4))
        check_channels('FitNets', 'student', self.student_channels, student)
        student, teacher = upcast(student, teacher)
        if student.dim() == 4:
            hint = F.conv2d(student, self.regressor.weight[:, :, None, None], self.regressor.bias)
        else:
            hint = self.regressor(student)
        if self.norm is not None:
            hint = self._normalize(hint)
        if self.relu:
            hint = F.relu(hint)
        if hint.shape != teacher.shape:
            raise ValueError(f'FitNets: student {tuple(student.shape)} regressed to '
                             f'{tuple(hint.shape)} does not match teacher {tuple(teacher.shape)}; '
                             f'batch and spatial sizes must agree and teacher_channels='
                             f'{self.teacher_channels} must be the teacher width.')
        if self.distance == 'normalized_l2':
            hint = F.normalize(hint.flatten(1), dim=1)
            target = F.normalize(teacher.flatten(1), dim=1)
            return (hint - target).pow(2).sum() / hint.shape[0]
        return F.mse_loss(hint, teacher)

    def _normalize(self, hint: Tensor) -> Tensor:
        if hint.dim() == 4:
            return self.norm(hint.flatten(2)).view_as(hint)
        if hint.dim() == 3:  # tokens, channels last
            return self.norm(hint.transpose(1, 2)).transpose(1, 2)
        return self.norm(hint)
