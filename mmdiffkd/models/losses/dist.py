"""DIST: Huang, You, Wang, Qian, Xu, "Knowledge Distillation from A Stronger Teacher",
NeurIPS 2022."""
import torch.nn.functional as F
from torch import Tensor

from mmdiffkd.registry import MODELS

from ._utils import check_same_shape, flatten_logits, upcast
from .base import DistillLoss


def pearson(a: Tensor, b: Tensor, dim: int, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of ``a`` and ``b`` along ``dim`` (cosine of the centred vectors)."""
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + eps)


@MODELS.register_module()
class DIST(DistillLoss):
    """Relation matching of predictions with the Pearson distance ``d_p(u, v) = 1 - rho(u, v)``.

    With ``P = softmax(Z / tau)`` of shape (B, K)::

        inter = tau^2 * mean_i d_p(P_s[i, :], P_t[i, :])    # per sample, across classes
        intra = tau^2 * mean_j d_p(P_s[:, j], P_t[:, j])    # per class, across the batch
        L = beta * inter + gamma * intra

    Returns a dict with the weighted parts ``inter`` and ``intra``. Dense (B, K, H, W) logits treat
    every pixel as a sample (the batch of the intra-class relation is then B*H*W pixels), as the
    authors' segmentation code does.

    Args:
        beta (float): weight of the inter-class relation. Default 1.0.
        gamma (float): weight of the intra-class relation. Default 1.0.
        tau (float): temperature. Default 1.0.
            beta = gamma = tau = 1 with declaration weight 2 is MMRazor's ImageNet R34->R18
            config (``configs/distill/mmcls/dist``). Other settings in the paper (e.g. CIFAR-100)
            were not checked here.
    """

    record_dims = (2, 4)

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, tau: float = 1.0,
                 eps: float = 1e-8):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'DIST: tau must be > 0; got {tau}.')
        self.beta, self.gamma, self.tau, self.eps = float(beta), float(gamma), float(tau), eps

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> dict:
        check_same_shape('DIST', student, teacher)
        student, teacher = upcast(student, teacher)
        p_s = F.softmax(flatten_logits(student) / self.tau, dim=1)
        p_t = F.softmax(flatten_logits(teacher) / self.tau, dim=1)
        if p_s.shape[0] < 2 and self.gamma != 0:
            raise ValueError(f'DIST: the intra-class relation needs at least 2 samples; got '
                             f'logits of shape {tuple(student.shape)}. Use gamma=0 for batch 1.')
        scale = self.tau ** 2
        inter = (1 - pearson(p_s, p_t, dim=1, eps=self.eps)).mean() * scale
        intra = (1 - pearson(p_s, p_t, dim=0, eps=self.eps)).mean() * scale
        return dict(inter=self.beta * inter, intra=self.gamma * intra)
