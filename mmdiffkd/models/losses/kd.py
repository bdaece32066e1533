"""KD: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", arXiv 1503.02531."""
from torch import Tensor

from mmdiffkd.registry import MODELS

from ._utils import check_same_shape, flatten_logits, softmax_kl, upcast
from .base import DistillLoss


@MODELS.register_module()
class KD(DistillLoss):
    """Temperature-softened KL divergence between teacher and student class distributions.

    ``L = tau^2 * mean_i KL(softmax(z_t_i / tau) || softmax(z_s_i / tau))``. The ``tau^2`` factor
    keeps gradient magnitudes comparable across temperatures (Hinton et al.).

    Logits are (B, K); dense (B, K, H, W) logits (segmentation) treat every pixel as a sample,
    so the loss is the per-pixel KL averaged over B*H*W (for a per-channel spatial distribution
    use ``CWD``).

    Args:
        tau (float): temperature. Default 4.0, mdistiller's CIFAR-100 default (with weights
            0.1 CE / 0.9 KD); its ImageNet R34->R18 config uses tau=1 (0.5 CE / 0.5 KD).
    """

    record_dims = (2, 4)

    def __init__(self, tau: float = 4.0):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'KD: tau must be > 0; got {tau}.')
        self.tau = float(tau)

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> Tensor:
        check_same_shape('KD', student, teacher)
        student, teacher = upcast(student, teacher)
        # KL(p_t || p_s) = sum_k p_t,k (log p_t,k - log p_s,k), averaged over samples, x tau^2
        return softmax_kl(flatten_logits(student), flatten_logits(teacher), self.tau)
