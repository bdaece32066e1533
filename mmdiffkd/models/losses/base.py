"""The contract between a distillation loss and the distiller, and what a loss returns.

Every loss registered in ``mmdiffkd.registry.MODELS`` for ``distill_losses`` subclasses
:class:`DistillLoss`. The distiller reads the class attributes and class methods below when it
builds the loss from the dry-forward records (it never inspects signatures), then calls
``forward(student, teacher, data_samples)`` at every step and logs what comes back
(:class:`LossParts` or a plain tensor / dict).
"""
from typing import ClassVar, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ._utils import channels_of

_LAYOUTS = {2: '(B, C)', 3: '(B, N, C) tokens', 4: '(B, C, H, W) maps', 5: '(B, C, D, H, W)'}


class LossParts(dict):
    """Named loss parts (``str -> scalar Tensor``) plus ``diagnostics``, logged but never summed.

    The distiller weights and logs every part as ``loss_<entry>_<part>``; MMEngine sums every
    logged key that contains ``loss`` into the total. ``diagnostics`` are detached scalars that
    explain the parts (DiffKD: the noise adapter's ``gamma``, its ``denoise_gain``); the
    distiller logs them as ``<entry>.<name>`` without a weight, so they reach the text log,
    ``scalars.json`` and TensorBoard but never the total or the gradient. Being a ``dict``,
    ``sum(parts.values())`` is the loss, as for a plain dict of parts.
    """

    def __init__(self, parts: Dict[str, Tensor], diagnostics: Optional[Dict[str, Tensor]] = None):
        super().__init__(parts)
        self.diagnostics = {k: v.detach() for k, v in (diagnostics or {}).items()}


def positions(x: Tensor) -> Tuple[int, ...]:
    """The positions of a record: () for (B, C), (N,) for tokens, (H, W) for maps."""
    if x.dim() == 3:
        return (x.shape[1], )
    return tuple(x.shape[2:])


def layout(x: Tensor) -> str:
    return _LAYOUTS.get(x.dim(), f'{x.dim()}-D')


class DistillLoss(nn.Module):
    """Base class of every distillation loss: the contract the distiller relies on.

    Class attributes (read by the distiller at build time):

    - ``takes_channels``: ``__init__`` takes ``student_channels`` and ``teacher_channels``. The
      distiller fills them from the dry-forward records when the config leaves them out, and
      refuses a given value that differs from the record.
    - ``uses_samples``: ``forward`` reads ground truth from ``data_samples`` (DKD, AEKT). The
      distiller passes the batch's data samples to every loss; this flag only documents which
      ones need them (``DistillPair.takes_samples``).
    - ``diagnostics``: names a forward may put in ``LossParts.diagnostics``. Logged as
      ``<entry>.<name>``, so a declaration name containing ``loss`` is refused for such a loss
      (MMEngine would add them to the total).
    - ``record_dims``: the record ranks ``forward`` accepts, student and teacher alike
      (2: (B, C), 3: (B, N, C) tokens, 4: (B, C, H, W) maps).

    Class methods (given the dry-forward records, batch 1, after per-side transforms):

    - :meth:`config_from_records` returns defaults derived from the records (DiffKD: its kernel
      size); values the config gives win.
    - :meth:`check_records` raises ``ValueError`` with the reason when ``forward`` could not
      take such records, so the distiller fails at build time instead of at the first step.
      The default accepts ``record_dims`` records with the same positions and, for a loss
      without channel arguments (no adapter), the same width.

    ``forward(student, teacher, data_samples=None)`` returns a scalar tensor, a dict of named
    scalar parts, or :class:`LossParts`. The teacher tensor is a constant: this class detaches
    it before every ``forward`` (a forward pre-hook), so no loss detaches it again and a direct
    call with a teacher that requires grad sends it none. (In the distiller the teacher runs
    under ``no_grad`` anyway.) The declaration's ``weight`` is the one loss weight: losses have
    no ``loss_weight``.
    """

    takes_channels: ClassVar[bool] = False
    uses_samples: ClassVar[bool] = False
    diagnostics: ClassVar[Tuple[str, ...]] = ()
    record_dims: ClassVar[Tuple[int, ...]] = (2, 3, 4)

    def __init__(self):
        super().__init__()
        self.register_forward_pre_hook(_teacher_as_constant, with_kwargs=True)

    @classmethod
    def config_from_records(cls, student: Tensor, teacher: Tensor) -> dict:
        """Config defaults derived from the records; none by default."""
        return {}

    @classmethod
    def check_records(cls, student: Tensor, teacher: Tensor, cfg: Mapping) -> None:
        """Raise ``ValueError`` when ``forward`` cannot take records shaped like these."""
        cls.check_dims(student, teacher)
        if student.dim() != teacher.dim() or positions(student) != positions(teacher):
            raise ValueError(f'{cls.__name__} needs student and teacher records of the same '
                             f'layout and positions; got student {layout(student)} with '
                             f'positions {positions(student)} and teacher {layout(teacher)} '
                             f'with positions {positions(teacher)}.')
        if not cls.takes_channels and channels_of(student) != channels_of(teacher):
            raise ValueError(f'{cls.__name__} has no adapter between widths, so student and '
                             f'teacher need the same number of channels; got student '
                             f'{tuple(student.shape)} ({channels_of(student)}) and teacher '
                             f'{tuple(teacher.shape)} ({channels_of(teacher)}). Record layers of '
                             f'equal width, or use a loss with an adapter (FitNets, VkD).')

    @classmethod
    def check_dims(cls, student: Tensor, teacher: Tensor) -> None:
        """Raise ``ValueError`` when a record's rank is not in ``record_dims``."""
        for what, x in (('student', student), ('teacher', teacher)):
            if x.dim() not in cls.record_dims:
                valid = ' or '.join(_LAYOUTS[d] for d in cls.record_dims)
                raise ValueError(f'{cls.__name__} takes {valid} records; the {what} record has '
                                 f'shape {tuple(x.shape)} ({layout(x)}).')

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None):
        raise NotImplementedError


def _teacher_as_constant(module, args, kwargs):
    """Forward pre-hook of every :class:`DistillLoss`: the teacher argument arrives detached."""
    if len(args) > 1 and torch.is_tensor(args[1]):
        return (args[0], args[1].detach()) + tuple(args[2:]), kwargs
    if torch.is_tensor(kwargs.get('teacher')):
        return args, dict(kwargs, teacher=kwargs['teacher'].detach())
    return None
