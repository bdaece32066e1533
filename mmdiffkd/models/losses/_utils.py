"""Helpers shared by the losses (and DiffKD): the compute dtype, KL divergence of softened
distributions, shape checks, labels from data samples, dense flattening."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from torch import Tensor


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype losses (and the DDIM step) compute in: float32 for half / bfloat16 tensors
    (autocast hands them over), float64 stays float64."""
    return torch.promote_types(x.dtype, torch.float32)


def upcast(*tensors: Tensor):
    """Each tensor in :func:`compute_dtype` (half / bfloat16 become float32; no copy otherwise),
    so softmaxes, variances and sums stay exact. One tensor in, one out."""
    out = tuple(x.to(compute_dtype(x)) for x in tensors)
    return out if len(out) > 1 else out[0]


def kl_rows(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) per row, from log-probabilities: ``sum_k p_k (log p_k - log q_k)``."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def softmax_kl(student: Tensor, teacher: Tensor, tau: float) -> Tensor:
    """Hinton's softened KL of (N, K) rows, averaged over the N rows::

        tau^2 * mean_i KL(softmax(t_i / tau) || softmax(s_i / tau))

    (the ``tau^2`` keeps gradient magnitudes comparable across temperatures). KD uses it on
    logits, CWD on each channel's spatial map, DiffKD on each position's channels.
    """
    log_p_s = F.log_softmax(student / tau, dim=1)
    log_p_t = F.log_softmax(teacher / tau, dim=1)
    return kl_rows(log_p_t, log_p_s).mean() * tau ** 2


def require_channels(name: str, student_channels: Optional[int],
                     teacher_channels: Optional[int], condition: str = '') -> None:
    """A loss with an adapter between widths needs both; the distiller fills them."""
    if student_channels is None or teacher_channels is None:
        raise ValueError(f'{name}{condition} needs student_channels and teacher_channels (the '
                         f'distiller fills them from a dry forward; set them when building it '
                         f'by hand).')


class LinearWarmup:
    """Mixin: ramp a loss up linearly over its first ``warmup_iters`` training forwards.

    DKD's authors multiply the loss by ``min(epoch / warmup, 1)``; here the count is of training
    forward calls (one per iteration without gradient accumulation), kept in a buffer so it is
    saved in checkpoints and survives a resume. ``warmup_iters=0`` disables it (no buffer).
    """

    def _init_warmup(self, warmup_iters: int) -> None:
        if warmup_iters < 0:
            raise ValueError(f'warmup_iters must be >= 0; got {warmup_iters}.')
        self.warmup_iters = int(warmup_iters)
        if self.warmup_iters:
            self.register_buffer('warmup_step', torch.zeros((), dtype=torch.long))

    def _warmup_factor(self):
        """Count this forward (in training mode) and return min(step / warmup_iters, 1)."""
        if not self.warmup_iters:
            return 1.0
        if self.training:
            self.warmup_step += 1
        return (self.warmup_step.float() / self.warmup_iters).clamp(max=1.0)


class EpochWarmup:
    """Mixin: DKD's authors' warm-up, ``min(epoch / warmup_epochs, 1)`` stepped per epoch.

    mdistiller (``mdistiller/distillers/DKD.py``, https://github.com/megvii-research/mdistiller)
    multiplies the loss by ``min(epoch / WARMUP, 1)`` with epochs counted from 1, so the factor
    is ``1 / WARMUP`` for the whole first epoch and 1 from epoch ``WARMUP`` on (its CIFAR-100
    configs: ``WARMUP: 20``; ImageNet: ``WARMUP: 1``, full weight from the first iteration).

    The epoch is MMEngine's: ``RuntimeInfoHook`` writes the 0-based ``runner.epoch`` to the
    current ``MessageHub`` (info ``'epoch'``) before training and before every train epoch, and
    a resumed run restores ``runner.epoch`` from its checkpoint first, so the factor continues
    where it stopped without a buffer of its own. ``warmup_epochs=0`` disables it.
    """

    def _init_epoch_warmup(self, warmup_epochs: float, warmup_iters: int = 0) -> None:
        """``warmup_iters``: the same loss's ``LinearWarmup`` length; only one may be set."""
        if warmup_epochs < 0:
            raise ValueError(f'warmup_epochs must be >= 0; got {warmup_epochs}.')
        if warmup_epochs and warmup_iters:
            raise ValueError(f"{type(self).__name__}: set warmup_epochs (the DKD authors' "
                             f'per-epoch schedule) or warmup_iters (a per-iteration ramp), not '
                             f'both; got warmup_epochs={warmup_epochs}, '
                             f'warmup_iters={warmup_iters}.')
        self.warmup_epochs = float(warmup_epochs)

    def _epoch_warmup_factor(self) -> float:
        """min((epoch + 1) / warmup_epochs, 1) for MMEngine's 0-based current train epoch."""
        if not self.warmup_epochs:
            return 1.0
        hub = MessageHub.get_current_instance()
        epoch = hub.get_info('epoch')
        name = type(self).__name__
        if epoch is None:
            raise RuntimeError(
                f'{name}: warmup_epochs={self.warmup_epochs:g} reads the training epoch from '
                f"MMEngine's MessageHub, which MMEngine's Runner fills (RuntimeInfoHook); none "
                f'is set. Train through the Runner, or use warmup_iters for a ramp counted in '
                f'forward calls.')
        max_epochs = hub.get_info('max_epochs')
        if max_epochs is not None and max_epochs < self.warmup_epochs:
            raise ValueError(
                f'{name}: warmup_epochs={self.warmup_epochs:g} never reaches full weight in a '
                f'run of max_epochs={max_epochs} (an iteration-based loop counts as 1 epoch). '
                f'Use warmup_epochs <= {max_epochs}, or warmup_iters for a ramp counted in '
                f'iterations.')
        return min((epoch + 1) / self.warmup_epochs, 1.0)


def check_same_shape(name: str, student: Tensor, teacher: Tensor) -> None:
    """Raise a ValueError naming both shapes when they differ."""
    if student.shape != teacher.shape:
        raise ValueError(f'{name}: student shape {tuple(student.shape)} and teacher shape '
                         f'{tuple(teacher.shape)} must be equal.')


def check_ndim(name: str, what: str, x: Tensor, allowed: Sequence[int]) -> None:
    """Raise a ValueError when ``x.dim()`` is not one of ``allowed``."""
    if x.dim() not in allowed:
        shapes = {2: '(B, C)', 3: '(B, N, C)', 4: '(B, C, H, W)'}
        valid = ' or '.join(shapes.get(n, f'{n}-D') for n in allowed)
        raise ValueError(f'{name}: {what} has shape {tuple(x.shape)}; expected {valid}.')


def channels_of(x: Tensor) -> int:
    """Width of (B, C), (B, C, H, W) (dim 1) or (B, N, C) tokens (last dim)."""
    return x.shape[-1] if x.dim() == 3 else x.shape[1]


def check_channels(name: str, what: str, expected: Optional[int], x: Tensor) -> None:
    """Raise a ValueError when a declared channel count disagrees with the tensor."""
    got = channels_of(x)
    if expected is not None and expected != got:
        raise ValueError(f'{name}: {what}_channels={expected} was declared but the {what} '
                         f'tensor of shape {tuple(x.shape)} has {got} channels; set '
                         f'{what}_channels={got} or leave it out so the distiller fills it.')


def token_grid(num_tokens: int, hw=None, like: Optional[Tensor] = None) -> Tuple[int, int]:
    """(H, W) of ``num_tokens`` tokens: ``hw`` when given, else the grid of the map ``like``
    (B, C, H, W) when H * W matches, else a square. Raises ValueError naming the count."""
    if hw is None and like is not None and like.dim() == 4 \
            and like.shape[2] * like.shape[3] == num_tokens:
        hw = tuple(like.shape[2:])
    if hw is None:
        side = int(round(num_tokens ** 0.5))
        if side * side != num_tokens:
            extra = [k for k in (1, 2) if num_tokens > k
                     and int(round((num_tokens - k) ** 0.5)) ** 2 == num_tokens - k]
            hint = (f' ({num_tokens - extra[0]} = {int(round((num_tokens - extra[0]) ** 0.5))}^2: '
                    f'drop the {extra[0]} leading class / distillation token(s) first)'
                    if extra else '')
            raise ValueError(f'{num_tokens} tokens are not a square grid{hint}; give the grid '
                             f'as (H, W) with H * W = {num_tokens}.')
        return side, side
    hw = tuple(hw)
    if hw[0] * hw[1] != num_tokens:
        raise ValueError(f'the grid {hw} has {hw[0] * hw[1]} positions, but there are '
                         f'{num_tokens} tokens.')
    return hw


def flatten_logits(logits: Tensor) -> Tensor:
    """(B, K) stays; dense (B, K, H, W) logits become (B*H*W, K): every pixel is a sample."""
    if logits.dim() == 2:
        return logits
    if logits.dim() == 4:
        return logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    raise ValueError(f'logits must be (B, K) or dense (B, K, H, W); got shape '
                     f'{tuple(logits.shape)}.')


LabelSource = Union[Tensor, Sequence, None]


def _label_of(sample) -> Tensor:
    """The ground truth of one MM data sample: mmpretrain ``gt_label`` or mmseg ``gt_sem_seg``."""
    if hasattr(sample, 'gt_label'):
        label = sample.gt_label
        label = label if isinstance(label, Tensor) else torch.as_tensor(label)
        if label.numel() != 1:
            raise ValueError(f'gt_label must hold one class index per sample (single-label '
                             f'classification); got {label.numel()} values: {label.tolist()}.')
        return label.reshape(())
    if hasattr(sample, 'gt_sem_seg'):
        return sample.gt_sem_seg.data.reshape(sample.gt_sem_seg.data.shape[-2:])
    raise TypeError(f'cannot read labels from a {type(sample).__name__}: expected an mmpretrain '
                    f'DataSample (gt_label), an mmseg SegDataSample (gt_sem_seg) or a LongTensor.')


def get_labels(name: str, data_samples: LabelSource, logits: Tensor) -> Tensor:
    """Labels matching ``logits``: (B,) for (B, K) logits, (B, H, W) for dense (B, K, H, W).

    ``data_samples`` is a LongTensor of labels, or a list of mmpretrain ``DataSample``
    (``gt_label``) / mmseg ``SegDataSample`` (``gt_sem_seg``). Dense labels of another size are
    resized to the logits with nearest-neighbour sampling.
    """
    if data_samples is None:
        raise ValueError(f'{name} needs ground-truth labels: pass data_samples (a LongTensor of '
                         f'class indices or the batch data samples).')
    if isinstance(data_samples, Tensor):
        labels = data_samples
    else:
        labels = torch.stack([_label_of(s) for s in data_samples])
    labels = labels.to(device=logits.device, dtype=torch.long)
    batch = logits.shape[0]
    if logits.dim() == 2:
        labels = labels.reshape(-1) if labels.dim() == 2 and labels.shape[1] == 1 else labels
        if labels.shape != (batch,):
            raise ValueError(f'{name}: labels of shape {tuple(labels.shape)} do not fit logits '
                             f'of shape {tuple(logits.shape)}; expected ({batch},).')
    elif logits.dim() == 4:
        if labels.dim() != 3 or labels.shape[0] != batch:
            raise ValueError(f'{name}: dense logits {tuple(logits.shape)} need labels of shape '
                             f'({batch}, H, W); got {tuple(labels.shape)}.')
        if labels.shape[-2:] != logits.shape[-2:]:
            labels = F.interpolate(labels[:, None].float(), size=logits.shape[-2:],
                                   mode='nearest')[:, 0].long()
    else:
        raise ValueError(f'{name}: logits must be (B, K) or (B, K, H, W); got '
                         f'{tuple(logits.shape)}.')
    return labels


def flatten_with_labels(name: str, labels: Tensor, ignore_index: Optional[int],
                        *logits: Tensor):
    """Flatten labels and every logits tensor alike, dropping ignored pixels.

    Returns ``(labels1d, [logits2d, ...])``; samples whose label is ``ignore_index`` are removed.
    ``ignore_index=None`` keeps every sample (then every label must be a class index).
    """
    flat_logits = [flatten_logits(x) for x in logits]
    flat_labels = labels.reshape(-1)
    num_classes = flat_logits[0].shape[1]
    if ignore_index is None:
        keep = torch.ones_like(flat_labels, dtype=torch.bool)
        valid = f'[0, {num_classes})'
    else:
        keep = flat_labels != ignore_index
        valid = f'[0, {num_classes}) or equal ignore_index={ignore_index}'
    bad = keep & ((flat_labels < 0) | (flat_labels >= num_classes))
    if bad.any():
        raise ValueError(f'{name}: labels must lie in {valid}; found '
                         f'{flat_labels[bad][:5].tolist()}.')
    if ignore_index is None:
        return flat_labels, flat_logits
    return flat_labels[keep], [x[keep] for x in flat_logits]
