"""CWD: Shu, Liu, Gao, Yan, Shen, "Channel-wise Knowledge Distillation for Dense Prediction",
ICCV 2021."""
from typing import Optional

import torch.nn as nn
from torch import Tensor

from mmdiffkd.registry import MODELS

from ._utils import check_channels, check_ndim, check_same_shape, softmax_kl, upcast
from .base import DistillLoss


@MODELS.register_module()
class CWD(DistillLoss):
    """Channel-wise distillation: each channel, softmax-normalised over space, matched by KL.

    For a map y of shape (B, C, H, W), ``phi(y)_{c,i} = softmax_i(y_{c,i} / tau)`` over the
    H*W positions of channel c, and::

        L = tau^2 / (B * C) * sum_{b,c} sum_i phi(t)_{c,i} * log(phi(t)_{c,i} / phi(s)_{c,i})

    Works on segmentation logit maps (C = classes) and on feature maps. When
    ``student_channels`` and ``teacher_channels`` are both given and differ, a 1x1 convolution
    (bias) first maps the student feature to the teacher width; otherwise shapes must match.

    Args:
        tau (float): temperature. Default 1.0, as in MMRazor's CWD configs, which weigh the loss
            10 on each FPN level (COCO) and 5 on PSPNet logits (Cityscapes).
        student_channels (int, optional): student width, for the adapter.
        teacher_channels (int, optional): teacher width, for the adapter.
    """

    takes_channels = True
    record_dims = (4,)

    def __init__(self, tau: float = 1.0, student_channels: Optional[int] = None,
                 teacher_channels: Optional[int] = None):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'CWD: tau must be > 0; got {tau}.')
        self.tau = float(tau)
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.adapter = None
        if (student_channels is not None and teacher_channels is not None
                and student_channels != teacher_channels):
            self.adapter = nn.Conv2d(student_channels, teacher_channels, 1)

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> Tensor:
        check_ndim('CWD', 'student', student, (4,))
        check_ndim('CWD', 'teacher', teacher, (4,))
        student, teacher = upcast(student, teacher)
        if self.adapter is not None:
            check_channels('CWD', 'student', self.student_channels, student)
            student = self.adapter(student)
        check_same_shape('CWD', student, teacher)
        b, c = student.shape[:2]  # one row per (sample, channel): its H*W positions
        return softmax_kl(student.reshape(b * c, -1), teacher.reshape(b * c, -1), self.tau)
