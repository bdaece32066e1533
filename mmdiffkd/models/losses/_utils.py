"""Helpers shared by the losses: shape checks, labels from data samples, dense flattening."""
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor


def upcast(*tensors: Tensor):
    """Half / bfloat16 tensors (AMP) become float32 so softmaxes, variances and sums stay exact."""
    out = tuple(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x for x in tensors)
    return out if len(out) > 1 else out[0]


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


def flatten_with_labels(name: str, labels: Tensor, ignore_index: int, *logits: Tensor):
    """Flatten labels and every logits tensor alike, dropping ignored pixels.

    Returns ``(labels1d, [logits2d, ...])``; samples whose label is ``ignore_index`` are removed.
    """
    flat_logits = [flatten_logits(x) for x in logits]
    flat_labels = labels.reshape(-1)
    keep = flat_labels != ignore_index
    num_classes = flat_logits[0].shape[1]
    bad = keep & ((flat_labels < 0) | (flat_labels >= num_classes))
    if bad.any():
        raise ValueError(f'{name}: labels must lie in [0, {num_classes}) or equal ignore_index='
                         f'{ignore_index}; found {flat_labels[bad][:5].tolist()}.')
    return flat_labels[keep], [x[keep] for x in flat_logits]
