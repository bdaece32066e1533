"""Teacher input renormalisation: the student's normalised batch mapped to the teacher's.

Both models' data preprocessors normalise ``x = (raw[perm] - mean) / std`` per channel, with
``perm`` an optional RGB <-> BGR swap. Given the student's batch ``x_s``, the teacher's own
preprocessor would have produced, exactly (an affine map per channel)::

    raw   = x_s * std_s + mean_s                 (in the student's channel order)
    x_t   = (raw[swap] - mean_t) / std_t         = x_s[swap] * scale + shift
    scale = std_s[swap] / std_t,   shift = (mean_s[swap] - mean_t) / std_t

Pure functions of tensors; the distiller logs and applies the result.
"""
from typing import NamedTuple, Optional

import torch
from torch import Tensor


class InputNorm(NamedTuple):
    """What a data preprocessor does to a batch: mean / std (None: no normalisation), swap."""
    mean: Optional[Tensor]
    std: Optional[Tensor]
    swap: bool


class Renorm(NamedTuple):
    """``x_t = x_s[:, ::-1] (if flip) * scale + shift``, scale / shift of shape (1, C, 1, 1)."""
    flip: bool
    scale: Tensor
    shift: Tensor

    def __call__(self, inputs: Tensor) -> Tensor:
        if self.flip:
            inputs = inputs.flip(1)
        return inputs * self.scale.to(inputs) + self.shift.to(inputs)

    def apply_to_tensors(self, fn) -> 'Renorm':
        """The same map with ``fn`` (a ``Module._apply`` function: ``.to()``, ``.half()``)."""
        return Renorm(self.flip, fn(self.scale), fn(self.shift))


def input_norm(preprocessor) -> Optional[InputNorm]:
    """The normalisation of an MMEngine / mmdet / mmseg / mmpretrain preprocessor (None if it
    has none we know of)."""
    if preprocessor is None or not hasattr(preprocessor, '_enable_normalize'):
        return None
    swap = False
    # the flag is named differently in mmengine/mmdet, mmseg and mmpretrain
    for attr in ('_channel_conversion', 'channel_conversion', 'to_rgb'):
        if hasattr(preprocessor, attr):
            swap = bool(getattr(preprocessor, attr))
            break
    if not preprocessor._enable_normalize:
        return InputNorm(None, None, swap)
    return InputNorm(preprocessor.mean.flatten().cpu(), preprocessor.std.flatten().cpu(), swap)


def renorm(student: InputNorm, teacher: InputNorm) -> Optional[Renorm]:
    """The map from the student's normalised batch to the teacher's, or None when they agree."""
    if student.swap == teacher.swap and _same(student.mean, teacher.mean) \
            and _same(student.std, teacher.std):
        return None
    ref = student.mean if student.mean is not None else teacher.mean
    channels = ref.numel() if ref is not None else 1  # neither normalises: only a swap
    mean_s, std_s = _or(student.mean, 0.0, channels), _or(student.std, 1.0, channels)
    mean_t, std_t = _or(teacher.mean, 0.0, channels), _or(teacher.std, 1.0, channels)
    flip = student.swap != teacher.swap
    if flip:
        mean_s, std_s = mean_s.flip(0), std_s.flip(0)
    scale = std_s / std_t
    shift = (mean_s - mean_t) / std_t
    return Renorm(flip, scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1))


def describe(student: InputNorm, teacher: InputNorm, flip: bool) -> str:
    def fmt(v):
        return 'none' if v is None else v.tolist()
    return (f'student mean {fmt(student.mean)}, std {fmt(student.std)}, teacher mean '
            f'{fmt(teacher.mean)}, std {fmt(teacher.std)}, channel order '
            f'{"swapped" if flip else "same"}')


def _same(a: Optional[Tensor], b: Optional[Tensor]) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and torch.equal(a, b)


def _or(value: Optional[Tensor], default: float, channels: int) -> Tensor:
    return value if value is not None else torch.full((channels, ), default)
