"""DKD: Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge Distillation", CVPR 2022."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdiffkd.registry import MODELS

from ._utils import (EpochWarmup, LinearWarmup, check_same_shape, flatten_with_labels,
                     get_labels, kl_rows, upcast)
from .base import DistillLoss


def binary_and_nontarget(logits: Tensor, labels: Tensor, tau: float) -> Tuple[Tensor, Tensor]:
    """Split softened predictions at the target class.

    Returns ``log_b`` (N, 2): log of the binary distribution ``b = [p_target, 1 - p_target]``
    and ``log_q`` (N, K-1): log of ``q = softmax`` over the non-target logits only.

    ``b`` is a Bernoulli distribution with log-odds ``d = z_target - logsumexp(z_non-target)``,
    so ``log p_target = log sigmoid(d)`` and ``log(1 - p_target) = log sigmoid(-d)``. Both are
    computed from ``d`` without cancellation: the difference ``logsumexp(z_nt) - logsumexp(z)``
    for ``log(1 - p_target)`` loses all relative precision when ``p_target`` is small (a tiny
    result from two nearly equal numbers), which is where float32 went wrong before.
    """
    z = logits / tau
    num, classes = z.shape
    target = F.one_hot(labels, classes).bool()
    z_nt = z[~target].view(num, classes - 1)
    log_odds = z[target] - torch.logsumexp(z_nt, dim=1)
    log_b = torch.stack([F.logsigmoid(log_odds), F.logsigmoid(-log_odds)], dim=1)
    return log_b, F.log_softmax(z_nt, dim=1)


@MODELS.register_module()
class DKD(EpochWarmup, LinearWarmup, DistillLoss):
    """Decoupled KD: target-class KD (TCKD) and non-target-class KD (NCKD) weighted apart.

    With ``b`` the binary [target, rest] distribution and ``q`` the distribution over the K-1
    non-target classes, both at temperature ``tau``::

        TCKD = KL(b_t || b_s),  NCKD = KL(q_t || q_s)
        L = alpha * tau^2 * mean(TCKD) + beta * tau^2 * mean(NCKD)

    (classical KD equals TCKD + (1 - p_t_target) * NCKD, the coupling DKD removes.)

    Labels come from ``data_samples``: a LongTensor (B,) / (B, H, W), mmpretrain ``DataSample``
    (``gt_label``) or mmseg ``SegDataSample`` (``gt_sem_seg``). (B, K) logits use every label as
    a class (ImageNet's class 255 is distilled like any other, as in mdistiller and MMRazor).
    Dense (B, K, H, W) logits treat every labelled pixel as a sample; pixels equal to
    ``ignore_index`` are skipped.

    Returns a dict with the weighted parts ``tckd`` and ``nckd``.

    Args:
        alpha (float): TCKD weight. Default 1.0.
        beta (float): NCKD weight. Default 8.0.
        tau (float): temperature. Default 4.0.
            alpha=1, beta=8, tau=4 are the authors' defaults (mdistiller ``configs/cifar100``;
            beta varies per CIFAR pair in the paper). Their ImageNet R34->R18 config uses
            alpha=1, beta=0.5, tau=1 (mdistiller ``configs/imagenet/r34_r18/dkd.yaml``).
        ignore_index (int): label of pixels to skip in dense (B, K, H, W) logits; not used for
            (B, K) logits. Default 255 (mmseg's).
        warmup_epochs (float): the authors' warm-up: both parts times
            ``min(epoch / warmup_epochs, 1)``, epochs counted from 1, stepped per epoch
            (MMEngine's epoch, read from its MessageHub). mdistiller uses 20 on CIFAR-100 and 1
            on ImageNet (1 = full weight from the first iteration, i.e. no ramp). Default 0
            (off).
        warmup_iters (int): instead, a linear ramp over this many training forwards,
            ``min(step / warmup_iters, 1)`` (this project's option, not the authors'; for
            iteration-based loops or runs shorter than the paper's). Default 0 (off). Set at
            most one of the two.
    """

    uses_samples = True
    record_dims = (2, 4)

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, tau: float = 4.0,
                 ignore_index: int = 255, warmup_epochs: float = 0, warmup_iters: int = 0):
        super().__init__()
        self._init_warmup(warmup_iters)
        self._init_epoch_warmup(warmup_epochs, warmup_iters)
        if tau <= 0:
            raise ValueError(f'DKD: tau must be > 0; got {tau}.')
        self.alpha, self.beta, self.tau = float(alpha), float(beta), float(tau)
        self.ignore_index = ignore_index

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> dict:
        check_same_shape('DKD', student, teacher)
        student, teacher = upcast(student, teacher)
        # counted even when every pixel is ignored
        factor = self._warmup_factor() * self._epoch_warmup_factor()
        labels = get_labels('DKD', data_samples, student)
        ignore = self.ignore_index if student.dim() == 4 else None
        labels, (s, t) = flatten_with_labels('DKD', labels, ignore, student, teacher)
        if s.shape[1] < 2:
            raise ValueError(f'DKD needs at least 2 classes; got logits {tuple(student.shape)}.')
        if s.shape[0] == 0:  # every pixel ignored
            zero = student.sum() * 0
            return dict(tckd=zero, nckd=zero)
        log_b_s, log_q_s = binary_and_nontarget(s, labels, self.tau)
        log_b_t, log_q_t = binary_and_nontarget(t, labels, self.tau)
        scale = self.tau ** 2 * factor
        tckd = kl_rows(log_b_t, log_b_s).mean() * scale
        nckd = kl_rows(log_q_t, log_q_s).mean() * scale
        return dict(tckd=self.alpha * tckd, nckd=self.beta * nckd)
