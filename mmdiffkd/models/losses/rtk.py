"""RTK: Yang, Kao, Huang, "Representative Teacher Keys for Knowledge Distillation Model Compression
Based on Attention Mechanism for Image Classification", arXiv 2206.12788.

No public code exists and only the abstract could be consulted while writing this module: the
equations below are this implementation's reading of it, built on attention-based feature
distillation (AFD, Ji et al., AAAI 2021, the likely base: unverified). Every uncertain choice is
an argument.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmdiffkd.registry import MODELS

from ._utils import check_channels, check_ndim, require_channels, upcast
from .base import DistillLoss

SELECTIONS = ('global', 'query', 'none')
TARGETS = ('pairwise', 'aggregate')


def to_tokens(x: Tensor, pool_size: Optional[int]) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C) (optionally pooled to pool_size x pool_size); tokens pass."""
    if x.dim() == 4:
        if pool_size is not None:
            x = F.adaptive_avg_pool2d(x, pool_size)
        return x.flatten(2).transpose(1, 2)
    return x


@MODELS.register_module()
class RTK(DistillLoss):
    """Student positions query teacher positions; only representative teacher keys are kept.

    Notation: student tokens s_i (i = 1..N_s, width C_s), teacher tokens t_j (j = 1..N_t,
    width C_t), from (B, C, H, W) maps (every position is a token) or (B, N, C) tokens; the two
    grids may differ in size. ``LN`` is layer norm over channels without affine parameters.

    1. Queries from the student, keys from the teacher (d = ``embed_channels``)::

           q_i = W_q LN(s_i),   k_j = W_k LN(t_j),   e_ij = q_i . k_j / sqrt(d)

    2. Representative teacher keys R (``key_selection``):

       - ``'global'`` (default): per image, rank teacher keys by the attention mass the student
         queries give them, ``r_j = 1/N_s sum_i softmax_j(e_ij)``, keep the top
         ``ceil(key_ratio * N_t)``. Keys no student query attends to are filtered out for all.
       - ``'query'``: each query keeps its own top ``ceil(key_ratio * N_t)`` keys.
       - ``'none'``: keep every key (plain attention-based feature matching).

    3. Attention over the kept keys only: ``a_ij = exp(e_ij) / sum_{j' in R} exp(e_ij')`` for
       j in R, 0 otherwise.
    4. Values are the teacher tokens ``v_j = LN(t_j)`` (raw ``t_j`` with ``normalize=False``);
       the student is mapped to the teacher width, ``u_i = LN(W_v s_i)``.
    5. Loss (``target``), averaged over B, N_s and C_t:

       - ``'pairwise'`` (default, AFD's form: attention sets the distillation intensity of each
         pair): ``L = 1/(N_s C_t) sum_i sum_j a_ij ||u_i - v_j||^2``;
       - ``'aggregate'``: match the attended teacher feature,
         ``L = 1/(N_s C_t) sum_i ||u_i - sum_j a_ij v_j||^2``.

    W_q, W_k, W_v are trained with the student by the same loss (as AFD's attention is), so the
    attention learns which teacher positions the student can match; the teacher gets no gradient.

    Args:
        student_channels (int): C_s (filled by the distiller's dry forward).
        teacher_channels (int): C_t.
        embed_channels (int): d, width of queries and keys. Default 128 (unverified choice).
        key_ratio (float): fraction of teacher keys kept, in (0, 1]. Default 0.5 (unverified).
        key_selection (str): 'global', 'query' or 'none'. Default 'global'.
        target (str): 'pairwise' or 'aggregate'. Default 'pairwise'.
        normalize (bool): layer-norm values and the projected student. Default True.
        pool_size (int, optional): average-pool maps to pool_size x pool_size before attention,
            to bound the N_s x N_t attention cost on large maps. Default None (no pooling).
    """

    takes_channels = True
    record_dims = (3, 4)

    @classmethod
    def check_records(cls, student, teacher, cfg):
        """Tokens or maps; the two grids may differ (attention over the teacher's positions)."""
        cls.check_dims(student, teacher)

    def __init__(self, student_channels: Optional[int] = None,
                 teacher_channels: Optional[int] = None, embed_channels: int = 128,
                 key_ratio: float = 0.5, key_selection: str = 'global',
                 target: str = 'pairwise', normalize: bool = True,
                 pool_size: Optional[int] = None):
        super().__init__()
        require_channels('RTK', student_channels, teacher_channels)
        if not 0 < key_ratio <= 1:
            raise ValueError(f'RTK: key_ratio must lie in (0, 1]; got {key_ratio}.')
        if key_selection not in SELECTIONS:
            raise ValueError(f'RTK: key_selection={key_selection!r} is not one of {SELECTIONS}.')
        if target not in TARGETS:
            raise ValueError(f'RTK: target={target!r} is not one of {TARGETS}.')
        if pool_size is not None and pool_size < 1:
            raise ValueError(f'RTK: pool_size must be a positive int or None; got {pool_size}.')
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.embed_channels, self.key_ratio = embed_channels, float(key_ratio)
        self.key_selection, self.target = key_selection, target
        self.normalize, self.pool_size = normalize, pool_size
        self.query = nn.Linear(student_channels, embed_channels)
        self.key = nn.Linear(teacher_channels, embed_channels)
        self.value = nn.Linear(student_channels, teacher_channels)

    def _ln(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:])

    def attention(self, s: Tensor, t: Tensor) -> Tensor:
        """Attention a (B, N_s, N_t) of student tokens over the kept teacher keys (steps 1-3)."""
        q = self.query(self._ln(s))
        k = self.key(self._ln(t))
        scores = q @ k.transpose(1, 2) / math.sqrt(self.embed_channels)  # e_ij
        if self.key_selection == 'none' or self.key_ratio >= 1:
            return scores.softmax(dim=-1)
        num_keys = t.shape[1]
        keep = max(1, math.ceil(self.key_ratio * num_keys))
        if self.key_selection == 'global':
            with torch.no_grad():
                mass = scores.softmax(dim=-1).mean(dim=1)  # r_j, (B, N_t)
                idx = mass.topk(keep, dim=-1).indices
                mask = torch.zeros_like(mass, dtype=torch.bool).scatter_(1, idx, True)
            mask = mask[:, None, :]
        else:  # 'query'
            with torch.no_grad():
                idx = scores.topk(keep, dim=-1).indices
                mask = torch.zeros_like(scores, dtype=torch.bool).scatter_(2, idx, True)
        return scores.masked_fill(~mask, float('-inf')).softmax(dim=-1)

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None) -> Tensor:
        check_ndim('RTK', 'student', student, (3, 4))
        check_ndim('RTK', 'teacher', teacher, (3, 4))
        if student.shape[0] != teacher.shape[0]:
            raise ValueError(f'RTK: student {tuple(student.shape)} and teacher '
                             f'{tuple(teacher.shape)} must share the batch size.')
        check_channels('RTK', 'student', self.student_channels, student)
        check_channels('RTK', 'teacher', self.teacher_channels, teacher)
        student, teacher = upcast(student, teacher)
        s = to_tokens(student, self.pool_size)
        t = to_tokens(teacher, self.pool_size)
        attn = self.attention(s, t)
        u = self.value(s)
        v = t
        if self.normalize:
            u, v = self._ln(u), self._ln(v)
        attended = attn @ v  # sum_j a_ij v_j
        if self.target == 'aggregate':
            return F.mse_loss(u, attended)
        # sum_j a_ij ||u_i - v_j||^2 = ||u_i||^2 - 2 u_i . sum_j a_ij v_j + sum_j a_ij ||v_j||^2,
        # expanded so no (N_s, N_t, C_t) tensor is built.
        v_sq = v.pow(2).sum(-1, keepdim=True)  # ||v_j||^2, (B, N_t, 1)
        pair = u.pow(2).sum(-1) - 2 * (u * attended).sum(-1) + (attn @ v_sq).squeeze(-1)
        return pair.mean() / v.shape[-1]
