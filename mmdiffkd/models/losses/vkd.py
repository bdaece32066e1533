"""VkD: Miles, Elezi, Deng, "VkD: Improving Knowledge Distillation using Orthogonal Projections",
CVPR 2024."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.parametrizations import orthogonal

from mmdiffkd.registry import MODELS

from ._utils import check_channels, check_ndim, require_channels, upcast
from .base import DistillLoss

NORMS = ('sample', 'channel', 'none')
MAPS = (None, 'matrix_exp', 'cayley', 'householder')


@MODELS.register_module()
class VkD(DistillLoss):
    """Orthogonal projection of the student to the teacher width + task-specific normalisation.

    ``P`` is a bias-free linear map (a 1x1 convolution on maps) kept orthogonal by PyTorch's
    ``orthogonal`` parametrization: with ``P`` of shape (C_t, C_s) its columns are orthonormal
    when C_s <= C_t (its rows when C_s > C_t). Widening is then norm-preserving (the student
    feature is embedded, not rescaled or distorted) and narrowing keeps an orthonormal subspace,
    so the distillation loss cannot be met by a degenerate projection. Then::

        L = smooth_l1(N_s(P s), N_t(t))

    ``normalize`` picks the normalisation:

    - ``'sample'`` (classification, the default): the teacher feature standardised per sample
      over its channels (layer norm without affine parameters); the student side is not
      normalised (``N_s`` = identity), as in the authors' classification code.
    - ``'channel'`` (dense features, detection): both sides standardised per channel over batch
      and positions with the biased variance plus ``eps`` (batch-norm statistics, no affine, no
      running buffers). The authors' ViDT code divides by the unbiased standard deviation
      without eps, ``(x - mean) / std``: ours is theirs times ``sqrt(n/(n-1))`` on both sides
      (n = values per channel, eps aside), so the smooth-L1 is theirs times a factor between
      ``sqrt(n/(n-1))`` and ``n/(n-1)`` (negligible for n = batch x positions).
    - ``'none'``: no normalisation.

    Inputs are pooled features (B, C), tokens (B, N, C) or maps (B, C, H, W), one FPN level per
    declaration. Student tokens (B, N, C) with a pooled teacher (B, C) are mean-pooled over N
    first (the paper's DeiT setting: patch tokens pooled against the teacher's pooled feature).

    The authors' classification objective also has a KL term (T = 1) on the DeiT student's
    distillation head, next to this one; it is a declaration of its own here: ``KD`` with
    ``tau=1`` on the distillation head's logits (docs/methods.md).

    Args:
        student_channels (int): student width (filled by the distiller's dry forward).
        teacher_channels (int): teacher width.
        normalize (str): 'sample', 'channel' or 'none'. Default 'sample'.
        affine (bool): a learned per-channel scale and bias after the orthogonal map, acting
            with ``normalize='sample'`` or ``'none'``. Not allowed with ``normalize='channel'``
            (ValueError at build time): the per-channel standardisation of the projected
            student cancels any per-channel scale and bias (only a trace through ``eps`` is
            left), so it would train nothing. The authors' ViDT code has such an affine before
            its per-channel standardisation, where it is equally without effect. Default False.
        beta (float): smooth-L1 threshold. Default 1.0 (PyTorch's default).
        eps (float): normalisation epsilon. Default 1e-5.
        orthogonal_map (str, optional): how PyTorch parametrizes the orthogonal matrix:
            None (PyTorch's default: 'householder' for non-square maps, 'matrix_exp' for
            square), 'matrix_exp', 'cayley' or 'householder'. All keep ``P`` orthogonal; they
            differ in cost and optimisation path. 'cayley' was 13x faster than the default
            at 384 -> 768 on this project's CPU machine (docs/methods.md). Default None
            (the authors' code names no map).

    The authors' code weighs the loss 1 (classification) and 4 (ViDT detection).
    """

    takes_channels = True
    record_dims = (2, 3, 4)

    @classmethod
    def check_records(cls, student, teacher, cfg):
        """As the default, and student tokens against a pooled (B, C) teacher (mean-pooled)."""
        if student.dim() == 3 and teacher.dim() == 2:
            return
        super().check_records(student, teacher, cfg)

    def __init__(self, student_channels: Optional[int] = None,
                 teacher_channels: Optional[int] = None, normalize: str = 'sample',
                 affine: bool = False, beta: float = 1.0, eps: float = 1e-5,
                 orthogonal_map: Optional[str] = None):
        super().__init__()
        require_channels('VkD', student_channels, teacher_channels)
        if normalize not in NORMS:
            raise ValueError(f'VkD: normalize={normalize!r} is not one of {NORMS}.')
        if orthogonal_map not in MAPS:
            raise ValueError(f'VkD: orthogonal_map={orthogonal_map!r} is not one of {MAPS}.')
        if affine and normalize == 'channel':
            raise ValueError("VkD: affine=True does nothing with normalize='channel': the "
                             'per-channel standardisation of the projected student removes '
                             'any learned per-channel scale and bias. Drop affine=True (the '
                             "loss is the same), or use normalize='sample' / 'none', where the "
                             'student side is not standardised and the affine acts.')
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.normalize, self.beta, self.eps = normalize, float(beta), eps
        self.projection = orthogonal(nn.Linear(student_channels, teacher_channels, bias=False),
                                     orthogonal_map=orthogonal_map)
        if affine:
            self.scale = nn.Parameter(torch.ones(teacher_channels))
            self.bias = nn.Parameter(torch.zeros(teacher_channels))
        else:
            self.scale = self.bias = None

    def project(self, student: Tensor) -> Tensor:
        """Apply the orthogonal map (and the optional affine) on the channel axis."""
        if student.dim() == 4:  # channels first: a 1x1 convolution
            out = self.projection(student.permute(0, 2, 3, 1))
            if self.scale is not None:
                out = out * self.scale + self.bias
            return out.permute(0, 3, 1, 2)
        out = self.projection(student)
        if self.scale is not None:
            out = out * self.scale + self.bias
        return out

    def _standardize_sample(self, x: Tensor) -> Tensor:
        """Layer norm over the channel axis, no affine (per sample / per position)."""
        if x.dim() == 4:
            return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], eps=self.eps).permute(
                0, 3, 1, 2)
        return F.layer_norm(x, x.shape[-1:], eps=self.eps)

    def _standardize_channel(self, x: Tensor) -> Tensor:
        """Batch-norm statistics per channel over batch (and positions), no affine."""
        if x.dim() == 3:  # (B, N, C) -> (B, C, N)
            return F.batch_norm(x.transpose(1, 2), None, None, training=True,
                                eps=self.eps).transpose(1, 2)
        return F.batch_norm(x, None, None, training=True, eps=self.eps)

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> Tensor:
        check_ndim('VkD', 'student', student, (2, 3, 4))
        check_ndim('VkD', 'teacher', teacher, (2, 3, 4))
        student, teacher = upcast(student, teacher)
        if student.dim() == 3 and teacher.dim() == 2:
            student = student.mean(dim=1)
        check_channels('VkD', 'student', self.student_channels, student)
        projected = self.project(student)
        if projected.shape != teacher.shape:
            raise ValueError(f'VkD: student {tuple(student.shape)} projected to '
                             f'{tuple(projected.shape)} does not match teacher '
                             f'{tuple(teacher.shape)}; batch, token and spatial sizes must agree '
                             f'and teacher_channels={self.teacher_channels} must be the teacher '
                             f'width.')
        if self.normalize == 'sample':
            teacher = self._standardize_sample(teacher)
        elif self.normalize == 'channel':
            channels = projected.shape[1 if projected.dim() == 4 else -1]
            if projected.numel() // channels < 2:
                raise ValueError(f'VkD: normalize="channel" needs more than one value per channel; '
                                 f'got {tuple(projected.shape)}.')
            projected = self._standardize_channel(projected)
            teacher = self._standardize_channel(teacher)
        return F.smooth_l1_loss(projected, teacher, beta=self.beta)
