"""AEKT: Park, Lee, "Adaptive Explicit Knowledge Transfer for Knowledge Distillation",
arXiv 2409.01679.

No public code exists and only the abstract and third-party summaries could be consulted while
writing this module. What they state: a gradient analysis shows DKD's non-target term adaptively
controls how implicit knowledge is learned; AEKT adds explicit knowledge (the teacher's confidence
in the target class) learned adaptively, weighted by the teacher/student target-probability ratio;
classification and distillation are separated by an extra fully connected layer placed in series
after the classifier ("task serialization"), which learns inter-class relations. The equations
below are this implementation's reading of that; uncertain choices are arguments.
"""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from mmdiffkd.registry import MODELS

from ._utils import (EpochWarmup, LinearWarmup, check_channels, check_ndim, flatten_with_labels,
                     get_labels, kl_rows, require_channels, upcast)
from .base import DistillLoss
from .dkd import binary_and_nontarget

HEADS = ('serial', 'parallel', 'none')


@MODELS.register_module()
class AEKT(EpochWarmup, LinearWarmup, DistillLoss):
    """Adaptive explicit (target-confidence) + implicit (non-target) logit distillation.

    Distillation head ``h`` (``head``), training-only, kept in this loss module:

    - ``'serial'`` (default): ``student`` is the student's logits z (B, K) — the same logits its
      cross-entropy uses — and ``z_d = W z + c`` with a K x K layer initialised to the identity,
      so training starts as plain distillation and the layer then learns inter-class relations
      that the classification logits need not carry.
    - ``'parallel'``: ``student`` is the student's pre-logit feature (B, C) and
      ``z_d = W f + c`` (C -> K), a second classifier beside the task's own.
    - ``'none'``: ``z_d = z`` (no task separation; ablation).

    With ``b`` = [p_target, 1 - p_target] and ``q`` the distribution over the K-1 non-target
    classes, all at temperature ``tau`` (as in DKD), for each sample with label y::

        w          = sg( min(p_t[y] / p_s[y], max_ratio) )     # adaptive weight, no gradient
        explicit   = alpha * tau^2 * mean( w * KL(b_t || b_s) )
        implicit   = beta  * tau^2 * mean( KL(q_t || q_s) )

    so the student is pushed toward the teacher's target confidence harder while it is less
    confident than the teacher (w > 1) and more gently once it is more confident (w < 1).
    ``adaptive=False`` sets w = 1 (the explicit term becomes DKD's TCKD). ``max_ratio`` caps w
    while the student is still near chance (this implementation's safeguard).

    Export: the head lives in the loss (``distill_losses.<name>.head.*``), so the exported
    student is the plain classifier.

    Labels come from ``data_samples``: a LongTensor (B,) or mmpretrain ``DataSample``
    (``gt_label``). Returns a dict with the weighted parts ``explicit`` and ``implicit``.

    Args:
        student_channels (int): width of ``student``: K for 'serial' / 'none', C for 'parallel'
            (filled by the distiller's dry forward).
        teacher_channels (int): K, the number of classes.
        head (str): 'serial', 'parallel' or 'none'. Default 'serial'.
        alpha (float): explicit-term weight. Default 1.0 (DKD's alpha; unverified for AEKT).
        beta (float): implicit-term weight. Default 8.0 (DKD's CIFAR-100 beta; unverified).
        tau (float): temperature. Default 4.0 (DKD's CIFAR-100 tau; unverified).
        adaptive (bool): use the ratio weight w. Default True.
        max_ratio (float): upper bound of w. Default 10.0 (unverified safeguard).
        warmup_epochs (float): DKD's authors' warm-up, ``min(epoch / warmup_epochs, 1)``
            stepped per epoch from epoch 1 (see ``DKD``). Default 0 (off).
        warmup_iters (int): instead, a linear ramp over this many training forwards (see
            ``DKD``). Default 0 (off). Set at most one of the two.
    """

    takes_channels = True
    uses_samples = True
    record_dims = (2,)

    @classmethod
    def check_records(cls, student, teacher, cfg):
        """(B, C) records; without a head (``head='none'``) also of equal width."""
        super().check_records(student, teacher, cfg)
        if cfg.get('head', 'serial') == 'none' and student.shape != teacher.shape:
            raise ValueError(f"AEKT with head='none' compares the logits directly: student "
                             f'{tuple(student.shape)} and teacher {tuple(teacher.shape)} must '
                             f"have the same shape (head='parallel' maps a feature to logits).")

    def __init__(self, student_channels: Optional[int] = None,
                 teacher_channels: Optional[int] = None, head: str = 'serial',
                 alpha: float = 1.0, beta: float = 8.0, tau: float = 4.0,
                 adaptive: bool = True, max_ratio: float = 10.0, warmup_epochs: float = 0,
                 warmup_iters: int = 0):
        super().__init__()
        self._init_warmup(warmup_iters)
        self._init_epoch_warmup(warmup_epochs, warmup_iters)
        if head not in HEADS:
            raise ValueError(f'AEKT: head={head!r} is not one of {HEADS}.')
        if tau <= 0:
            raise ValueError(f'AEKT: tau must be > 0; got {tau}.')
        if max_ratio <= 0:
            raise ValueError(f'AEKT: max_ratio must be > 0; got {max_ratio}.')
        if head != 'none':
            require_channels('AEKT', student_channels, teacher_channels, f' with head={head!r}')
        if head == 'serial' and student_channels != teacher_channels:
            raise ValueError(f'AEKT: the serial head maps student logits to teacher logits, so '
                             f'student_channels={student_channels} must equal teacher_channels='
                             f'{teacher_channels} (the number of classes). Use head="parallel" '
                             f'to distil from a pre-logit feature.')
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.head_type = head
        self.alpha, self.beta, self.tau = float(alpha), float(beta), float(tau)
        self.adaptive, self.max_ratio = adaptive, float(max_ratio)
        self.head = None
        if head != 'none':
            self.head = nn.Linear(student_channels, teacher_channels)
            if head == 'serial':
                with torch.no_grad():
                    self.head.weight.copy_(torch.eye(teacher_channels))
                    self.head.bias.zero_()

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> dict:
        check_ndim('AEKT', 'student', student, (2,))
        check_ndim('AEKT', 'teacher', teacher, (2,))
        student, teacher = upcast(student, teacher)
        if self.head is not None:
            check_channels('AEKT', 'student', self.student_channels, student)
            check_channels('AEKT', 'teacher', self.teacher_channels, teacher)
            student = self.head(student)
        if student.shape != teacher.shape:
            raise ValueError(f'AEKT: distillation logits {tuple(student.shape)} and teacher '
                             f'logits {tuple(teacher.shape)} must have equal shapes.')
        labels = get_labels('AEKT', data_samples, student)
        labels, (s, t) = flatten_with_labels('AEKT', labels, None, student, teacher)
        log_b_s, log_q_s = binary_and_nontarget(s, labels, self.tau)
        log_b_t, log_q_t = binary_and_nontarget(t, labels, self.tau)
        weight = torch.ones_like(log_b_s[:, 0])
        if self.adaptive:
            with torch.no_grad():
                weight = (log_b_t[:, 0] - log_b_s[:, 0]).exp().clamp(max=self.max_ratio)
        scale = self.tau ** 2 * self._warmup_factor() * self._epoch_warmup_factor()
        explicit = (weight * kl_rows(log_b_t, log_b_s)).mean() * scale
        implicit = kl_rows(log_q_t, log_q_s).mean() * scale
        return dict(explicit=self.alpha * explicit, implicit=self.beta * implicit)
