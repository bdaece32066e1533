"""Distiller: an MMEngine ``BaseModel`` that trains a student against a frozen teacher.

It reads as a plan and a step. The plan is settled once, in ``__init__``: the declarations are
parsed (``declaration.py``), both models run a dry forward (``dry_run.py``), and every entry's
loss is checked against the records and built (``plan.py``). The step (``mode='loss'``) runs the
teacher under ``no_grad`` (cut short once its records are taken), the student with its own task
losses, and then every entry of the plan, in a flat loop. ``'predict'`` and ``'tensor'`` are the
student's, so MMEngine's loops and the task's metrics work unchanged.

The teacher is held outside the module tree: it has no entry in ``parameters()`` (so neither
the optimizer nor DDP ever sees it), ``state_dict()`` leaves it out (unless
``keep_teacher_in_checkpoint=True``), ``train()`` / ``init_weights()`` never touch it, and
``.to()`` / ``.cuda()`` still move it (see :meth:`Distiller._apply`).
"""
import weakref
from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModel

from mmdiffkd.registry import MODELS
from mmdiffkd.utils.checkpoint import install_safe_loaders, load_checkpoint_safe
from mmdiffkd.utils.integrity import check_checkpoint_path

from . import renorm
from .members import build_member, with_default_preprocessor
from .declaration import parse_declarations
from .dry_run import check_dry_run_cfg, dry_forward, fake_batch, input_channels
from .plan import build_losses
from .recorders import RecorderSet


class DistillPair(NamedTuple):
    """One loss entry of a step: log key, loss module and the tensors it is given."""
    key: str
    module: nn.Module
    student: object
    teacher: object
    weight: float
    takes_samples: bool


def _remove_hooks(*recorder_sets):
    for rec in recorder_sets:
        rec.remove()


@MODELS.register_module()
class Distiller(BaseModel):
    """Knowledge distillation from a frozen teacher into a student of mmdet / mmseg / mmpretrain.

    Args:
        student (dict | str): the experiment's model dict (``{{_base_.model}}``), or
            ``dict(config=..., checkpoint=None)`` with a config dict, file or ``'mmdet::...'``.
        teacher (dict | str): ``dict(config=..., checkpoint=...)``. The checkpoint is required
            (loaded strictly with ``weights_only=True``) unless ``allow_untrained=True`` is
            given with ``checkpoint=None`` (smoke tests only: a random teacher teaches nothing).
        distill_losses (dict): ``name -> dict(loss, student, teacher, index, call, source,
            weight, share, resize)``; a side may be ``dict(path, index, call, source,
            transform)``. See ``docs/engine.md``.
        keep_teacher_in_checkpoint (bool): write ``teacher.*`` into the state dict.
        renormalize_teacher_inputs (bool): when the teacher's data preprocessor normalizes with
            another mean / std / channel order than the student's, map the student's batch to
            the teacher's normalization (exact, an affine map per channel). Defaults to True.
        stop_teacher_early (bool): end the teacher forward once its records are taken.
        dry_run (dict): ``input_size=(H, W)`` and ``in_channels`` of the fake batch used at
            build time to infer channel counts and check shapes.
        init_distill_losses (str, optional): a checkpoint of the distillation modules (keys
            as in ``distill_losses.state_dict()``, e.g. written by ``tools/pretrain_diffkd.py``),
            loaded strictly after initialisation; a resume still overrides it.
        data_preprocessor (dict, optional): the student's default, as MMEngine's Runner makes
            the experiment's top-level ``data_preprocessor`` a default of its model: a student
            that sets its own keeps it. The distiller runs the student's, once per batch.
    """

    def __init__(self,
                 student,
                 teacher,
                 distill_losses=None,
                 keep_teacher_in_checkpoint=False,
                 renormalize_teacher_inputs=True,
                 stop_teacher_early=True,
                 dry_run=None,
                 init_distill_losses=None,
                 data_preprocessor=None,
                 init_cfg=None):
        install_safe_loaders()  # MMEngine's own loads (init_cfg, load_from) stay weights_only
        student = with_default_preprocessor(student, data_preprocessor)
        student_model, student_ckpt = build_member(student, 'student')
        teacher_model, teacher_ckpt = build_member(teacher, 'teacher')
        super().__init__(data_preprocessor=getattr(student_model, 'data_preprocessor', None),
                         init_cfg=init_cfg)
        self.student = student_model
        self.student_checkpoint = student_ckpt
        # The teacher lives in __dict__, not in _modules: see the module docstring.
        object.__setattr__(self, 'teacher', teacher_model)
        self.teacher_checkpoint = teacher_ckpt
        self.keep_teacher_in_checkpoint = keep_teacher_in_checkpoint
        self.stop_teacher_early = stop_teacher_early
        self.dry_run_cfg = check_dry_run_cfg(dry_run)
        if init_distill_losses is not None:
            check_checkpoint_path(init_distill_losses, 'init_distill_losses checkpoint')
        self.init_distill_losses = init_distill_losses
        if teacher_ckpt is not None:
            load_checkpoint_safe(teacher_model, teacher_ckpt)
        teacher_model.eval()
        teacher_model.requires_grad_(False)
        self._teacher_norm = self._teacher_renorm() if renormalize_teacher_inputs else None
        self.student_records = RecorderSet(self.student, 'student')
        self.teacher_records = RecorderSet(self.teacher, 'teacher')
        weakref.finalize(self, _remove_hooks, self.student_records, self.teacher_records)

        # ---- the plan, settled once -----------------------------------------------------------
        self.declarations = parse_declarations(distill_losses)
        self.entries = tuple(e for d in self.declarations for e in d.entries)
        for e in self.entries:
            for rec, recorders in ((e.student, self.student_records),
                                   (e.teacher, self.teacher_records)):
                recorders.add(rec.path, rec.source, rec.calls_needed)
        self.teacher_mode = 'tensor'
        records = self._dry_records() if self.entries else {}
        self.distill_losses = build_losses(self.declarations, records)

        self.register_state_dict_post_hook(_teacher_state_dict_hook)
        self.register_load_state_dict_pre_hook(_teacher_load_hook)

    # ---- building ------------------------------------------------------------------------------

    def _dry_records(self):
        """``{role: {entry key: record}}`` of a dry forward; sets ``teacher_mode``."""
        inputs = fake_batch(self.dry_run_cfg['input_size'],
                            self.dry_run_cfg['in_channels']
                            or input_channels(self.data_preprocessor, self.student))
        records = {}
        for role, model, recorders in (('student', self.student, self.student_records),
                                       ('teacher', self.teacher, self.teacher_records)):
            try:
                mode = dry_forward(role, model, recorders, inputs, model._mmdiffkd_scope)
                if role == 'teacher':
                    self.teacher_mode = mode
                records[role] = {e.key: getattr(e, role).read(recorders) for e in self.entries}
            finally:
                recorders.clear()  # the taken tensors live on only in `records`
        return records

    def _teacher_renorm(self):
        """The map from the student's normalized batch to the teacher's (None: the same)."""
        sp = self.data_preprocessor
        tp = getattr(self.teacher, 'data_preprocessor', None)
        s, t = renorm.input_norm(sp), renorm.input_norm(tp)
        if s is None or t is None:
            if tp is not None and type(tp) is not type(sp):
                print_log(f'Teacher data preprocessor {type(tp).__name__} differs from the '
                          f"student's {type(sp).__name__}; the teacher gets the student's batch "
                          'as is.', logger='current', level=30)
            return None
        affine = renorm.renorm(s, t)
        if affine is not None:
            print_log(f'Teacher and student normalize inputs differently '
                      f'({renorm.describe(s, t, affine.flip)}); the teacher\'s inputs are '
                      f'renormalized.', logger='current')
        return affine

    def teacher_inputs(self, inputs):
        """The batch as the teacher's own data preprocessor would have made it."""
        if self._teacher_norm is None or not torch.is_tensor(inputs) or inputs.dim() != 4:
            return inputs
        return self._teacher_norm(inputs)

    # ---- MMEngine hooks into the module --------------------------------------------------------

    def init_weights(self):
        """Initialise the student and the losses, then load the student checkpoint (if any).

        The teacher is not a child module, so its loaded weights are never re-initialised.
        """
        super().init_weights()
        if self.student_checkpoint is not None:
            load_checkpoint_safe(self.student, self.student_checkpoint)
        if self.init_distill_losses is not None:
            load_checkpoint_safe(self.distill_losses, self.init_distill_losses)

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()  # BatchNorm and dropout of the teacher stay in eval mode
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        if self._teacher_norm is not None:
            self._teacher_norm = self._teacher_norm.apply_to_tensors(fn)
        return self

    def extra_repr(self):
        return (f'teacher={type(self.teacher).__name__} (frozen, outside parameters(); '
                f'checkpoint={self.teacher_checkpoint!r})')

    # ---- the step ------------------------------------------------------------------------------

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self.student(inputs, data_samples, mode=mode)
        raise RuntimeError(f'Invalid mode {mode!r}; valid: "loss", "predict", "tensor".')

    def loss(self, inputs, data_samples=None):
        """Student task losses plus every weighted distillation loss, each under its own key
        (a student's bare ``loss`` key, mmpretrain's, becomes ``loss_student``)."""
        losses, pairs = self.distill_pairs(inputs, data_samples)
        for p in pairs:
            log_loss(losses, p.key, p.module(p.student, p.teacher, data_samples), p.weight)
        return losses

    def distill_pairs(self, inputs, data_samples=None, run_student=True):
        """Run the teacher (no grad) and the student (``mode='loss'``) once on a batch.

        Returns ``(student_losses, pairs)``: the student's task losses and one
        :class:`DistillPair` per loss entry, holding the records exactly as the loss sees them
        (indexed, transformed, resized; the teacher's, from its ``no_grad`` forward, are
        constants). Hooks and tools use it to look at
        what is distilled; with ``run_student=False`` only the teacher runs (``student_losses``
        is empty and every ``pair.student`` is None), e.g. to pre-train DiffKD on teacher
        features.
        """
        if self.teacher.training:
            self.teacher.eval()
        teacher_inputs = self.teacher_inputs(inputs)
        losses, pairs = {}, []
        try:
            with torch.no_grad():
                self.teacher_records.run(
                    lambda: self._teacher_forward(teacher_inputs, data_samples),
                    stop_early=self.stop_teacher_early)
            if run_student:
                with self.student_records.recording():
                    losses = dict(self.student(inputs, data_samples, mode='loss'))
                if 'loss' in losses:
                    # mmpretrain's heads return their loss as the bare key 'loss', the key
                    # MMEngine's parse_losses gives the total: it would log the student's loss
                    # as the total.
                    losses['loss_student'] = losses.pop('loss')
            for e in self.entries:
                t = e.teacher.read(self.teacher_records)
                s = None
                if run_student:
                    s, t = e.match(e.student.read(self.student_records), t)
                pairs.append(DistillPair(e.key, self._loss_module(e), s, t, e.weight,
                                         e.uses_samples))
        finally:
            self.student_records.clear()
            self.teacher_records.clear()
        return losses, pairs

    def _loss_module(self, entry):
        module = self.distill_losses[entry.name]
        return module[entry.module_key] if isinstance(module, nn.ModuleDict) else module

    def _teacher_forward(self, inputs, data_samples):
        if self.teacher_mode == 'predict' and data_samples is not None:
            # predict writes its results into the samples: give it metas only, not the
            # student's samples (and no copy of their ground truth)
            data_samples = [type(s)(metainfo=s.metainfo) for s in data_samples]
        return self.teacher(inputs, data_samples, mode=self.teacher_mode)


def log_loss(losses, entry, out, weight):
    """``loss_<entry>[_<part>]`` = weight x part; diagnostics as ``<entry>.<name>``, unweighted
    (MMEngine logs every key and sums only those containing 'loss')."""
    items = out.items() if isinstance(out, dict) else [(None, out)]
    logged = [(f'loss_{entry}' if part is None else f'loss_{entry}_{part}', value * weight)
              for part, value in items]
    logged += [(f'{entry}.{name}', value)
               for name, value in getattr(out, 'diagnostics', {}).items()]
    for k, value in logged:
        if k in losses:
            raise KeyError(f'Log key {k!r} of a distillation loss clashes with a key the '
                           'student already returns; rename the declaration.')
        losses[k] = value


# ---- state dict hooks: the teacher in or out of checkpoints -------------------------------------

def _teacher_state_dict_hook(module, state_dict, prefix, local_metadata):
    if module.keep_teacher_in_checkpoint:
        for k, v in module.teacher.state_dict().items():
            state_dict[f'{prefix}teacher.{k}'] = v


def _teacher_load_hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
                       unexpected_keys, error_msgs):
    """Teacher weights found in a checkpoint go to the teacher (strictly), not to the student."""
    head = f'{prefix}teacher.'
    keys = [k for k in state_dict if k.startswith(head)]
    if not keys:
        return
    teacher_state = OrderedDict((k[len(head):], state_dict.pop(k)) for k in keys)
    module.teacher.load_state_dict(teacher_state, strict=True)
