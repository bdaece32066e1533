"""Distiller: an MMEngine ``BaseModel`` that trains a student against a frozen teacher.

``mode='loss'`` runs the teacher under ``no_grad`` (cut short once its records are taken), the
student with its own task losses, and every declared distillation loss; ``'predict'`` and
``'tensor'`` are the student's, so MMEngine's loops and the task's metrics work unchanged.

The teacher is held outside the module tree: it has no entry in ``parameters()`` (so neither
the optimizer nor DDP ever sees it), ``state_dict()`` leaves it out (unless
``keep_teacher_in_checkpoint=True``), ``train()`` / ``init_weights()`` never touch it, and
``.to()`` / ``.cuda()`` still move it (see :meth:`Distiller._apply`).
"""
import copy
import inspect
import os.path as osp
import weakref
from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.structures import BaseDataElement

from mmdiffkd.registry import MODELS

from .builder import build_model_in_scope, infer_scope, load_model_spec
from .recorders import SOURCES, RecorderSet

DECLARATION_KEYS = ('loss', 'student', 'teacher', 'index', 'call', 'source', 'weight', 'share',
                    'resize')
RESIZE = (None, 'student', 'teacher')


# ---- small helpers ----------------------------------------------------------------------------

def feature_channels(x, where):
    """Channels of a record: dim 1 of (N, C), (N, C, H, W), (N, C, D, H, W); last of (N, L, C)."""
    if not torch.is_tensor(x):
        raise TypeError(f'{where} is a {type(x).__name__}, not a tensor; set index= to pick a '
                        'tensor out of a tuple/list/dict output.')
    if x.dim() in (2, 4, 5):
        return x.shape[1]
    if x.dim() == 3:
        return x.shape[-1]
    raise ValueError(f'{where} has shape {tuple(x.shape)}; expected (N, C), (N, L, C), '
                     '(N, C, H, W) or (N, C, D, H, W).')


def spatial_shape(x):
    if x.dim() in (4, 5):
        return tuple(x.shape[2:])
    if x.dim() == 3:
        return (x.shape[1], )
    return ()


def resize_to(x, size):
    """Bilinear (trilinear for 5-D) resize of a feature map to ``size``."""
    mode = 'trilinear' if x.dim() == 5 else 'bilinear'
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def _label(value):
    if isinstance(value, (list, tuple)):
        return '_'.join(str(v) for v in value)
    return str(value)


def _accepts(fn, name):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params  # explicit only: nn.Module.__init__ takes **kwargs but rejects them


def _is_url(path):
    return '://' in path


def _check_file(filename, role):
    if not isinstance(filename, str):
        raise TypeError(f'{role} must be a path or URL string, got {type(filename).__name__}.')
    if not _is_url(filename) and not osp.isfile(osp.expanduser(filename)):
        raise FileNotFoundError(f'{role} {filename!r} does not exist (expected a local .pth '
                                'file or an http(s):// URL).')


def load_weights(model, filename, role):
    """Load ``filename`` into ``model`` with ``torch.load(weights_only=True)``, strictly."""
    _check_file(filename, f'{role} checkpoint')
    from mmdiffkd.engine.checkpoint import load_checkpoint_safe
    return load_checkpoint_safe(model, filename, map_location='cpu', strict=True)


class _Entry:
    """One loss term: which records feed it and how it is named in the log."""

    def __init__(self, name, label, index, call):
        self.name, self.label, self.index, self.call = name, label, index, call

    @property
    def key(self):
        return self.name if self.label is None else f'{self.name}_{self.label}'


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


# ---- the distiller ----------------------------------------------------------------------------

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
            weight, share, resize)``; see ``docs/engine.md``.
        keep_teacher_in_checkpoint (bool): write ``teacher.*`` into the state dict.
        renormalize_teacher_inputs (bool): when the teacher's data preprocessor normalizes with
            another mean / std / channel order than the student's, map the student's batch to
            the teacher's normalization (exact, an affine map per channel). Defaults to True.
        stop_teacher_early (bool): end the teacher forward once its records are taken.
        dry_run (dict): ``input_size=(H, W)`` and ``in_channels`` of the fake batch used at
            build time to infer channel counts and check spatial shapes.
        init_distill_losses (str, optional): a checkpoint of the distillation modules (keys
            as in ``distill_losses.state_dict()``, e.g. written by ``tools/pretrain_diffkd.py``),
            loaded strictly after initialisation; a resume still overrides it.
        data_preprocessor (dict, optional): defaults to the student's own, run once per batch.
            A dict without ``type`` (the experiment's top-level one, which MMEngine's Runner
            injects) is given to the student model dict, as the student's own experiment would.
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
        if isinstance(data_preprocessor, dict) and 'type' not in data_preprocessor:
            # MMEngine's Runner puts the experiment's top-level data_preprocessor (no type:
            # the task model fills it in; mmpretrain keeps mean/std there) into `model`, i.e.
            # here. It is the student's, as in the student's own experiment.
            student = self._with_preprocessor(student, data_preprocessor)
            data_preprocessor = None
        student_model, student_ckpt = self._build_member(student, 'student')
        teacher_model, teacher_ckpt = self._build_member(teacher, 'teacher')
        if data_preprocessor is None:
            data_preprocessor = getattr(student_model, 'data_preprocessor', None)
        elif isinstance(data_preprocessor, dict):
            data_preprocessor = build_model_in_scope(data_preprocessor,
                                                     student_model._mmdiffkd_scope)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student = student_model
        self.student_checkpoint = student_ckpt
        # The teacher lives in __dict__, not in _modules: see the module docstring.
        object.__setattr__(self, 'teacher', teacher_model)
        self.teacher_checkpoint = teacher_ckpt
        self.keep_teacher_in_checkpoint = keep_teacher_in_checkpoint
        self.stop_teacher_early = stop_teacher_early
        self.teacher_mode = 'tensor'  # the dry forward may switch it to 'predict'
        self.dry_run_cfg = dict(input_size=(224, 224), in_channels=None)
        unknown = set(dry_run or {}) - set(self.dry_run_cfg)
        if unknown:
            raise KeyError(f'dry_run has unknown keys {sorted(unknown)}; valid: '
                           f'{sorted(self.dry_run_cfg)}.')
        self.dry_run_cfg.update(dry_run or {})
        if init_distill_losses is not None:
            _check_file(init_distill_losses, 'init_distill_losses checkpoint')
        self.init_distill_losses = init_distill_losses
        if teacher_ckpt is not None:
            load_weights(teacher_model, teacher_ckpt, 'teacher')
        teacher_model.eval()
        teacher_model.requires_grad_(False)
        self._teacher_norm = (self._teacher_renorm() if renormalize_teacher_inputs else None)

        self.student_records = RecorderSet(self.student, 'student')
        self.teacher_records = RecorderSet(self.teacher, 'teacher')
        weakref.finalize(self, _remove_hooks, self.student_records, self.teacher_records)
        self._declarations = OrderedDict()
        self.distill_losses = nn.ModuleDict()
        self._parse_declarations(distill_losses or {})
        if self._declarations:
            self._build_losses(self._infer_shapes())

        self.register_state_dict_post_hook(_teacher_state_dict_hook)
        self.register_load_state_dict_pre_hook(_teacher_load_hook)

    # ---- building ------------------------------------------------------------------------------

    @staticmethod
    def _with_preprocessor(spec, data_preprocessor):
        """``spec`` with ``data_preprocessor`` as its default (model dicts only)."""
        if isinstance(spec, dict) and 'type' in spec and 'config' not in spec:
            spec = copy.deepcopy(spec)
            spec.setdefault('data_preprocessor', copy.deepcopy(data_preprocessor))
        return spec

    @staticmethod
    def _build_member(spec, role):
        if isinstance(spec, nn.Module):
            if not hasattr(spec, '_mmdiffkd_scope'):
                spec._mmdiffkd_scope = None
            return spec, None
        model_cfg, file_scope, extra = load_model_spec(spec, role)
        allowed = {'checkpoint', 'allow_untrained'}
        unknown = set(extra) - allowed
        if unknown:
            raise KeyError(f'{role} has unknown keys {sorted(unknown)}; valid with config=: '
                           f'{sorted(allowed | {"config"})}.')
        checkpoint = extra.get('checkpoint')
        if role == 'teacher' and checkpoint is None and not extra.get('allow_untrained', False):
            raise ValueError('teacher.checkpoint is missing: a teacher must be trained. Give '
                             'teacher=dict(config=..., checkpoint="path/or/url.pth"); for a smoke '
                             'test only, checkpoint=None with allow_untrained=True.')
        if checkpoint is not None:
            _check_file(checkpoint, f'{role} checkpoint')
        scope = infer_scope(model_cfg, file_scope, role)
        model = build_model_in_scope(model_cfg, scope)
        model._mmdiffkd_scope = scope
        if not isinstance(model, BaseModel):
            raise TypeError(f'{role} must build an MMEngine BaseModel (a detector, segmentor or '
                            f'classifier), got {type(model).__name__}.')
        return model, checkpoint

    def _parse_declarations(self, declarations):
        if not isinstance(declarations, dict):
            raise TypeError('distill_losses must be a dict name -> dict(loss=..., student=..., '
                            f'teacher=..., ...), got {type(declarations).__name__}.')
        for name, decl in declarations.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f'distill loss name {name!r} must be an identifier (it becomes '
                                 'the log key loss_<name>).')
            if not isinstance(decl, dict):
                raise TypeError(f'distill_losses.{name} must be a dict, got '
                                f'{type(decl).__name__}.')
            unknown = set(decl) - set(DECLARATION_KEYS)
            if unknown:
                raise KeyError(f'distill_losses.{name} has unknown keys {sorted(unknown)}; valid '
                               f'keys: {list(DECLARATION_KEYS)}.')
            for key in ('loss', 'student'):
                if key not in decl:
                    raise KeyError(f'distill_losses.{name} needs "{key}".')
            d = dict(teacher=decl['student'], index=None, call=None, source='output', weight=1.0,
                     share=False, resize=None)
            d.update(decl)
            if d['source'] not in SOURCES:
                raise ValueError(f'distill_losses.{name}.source={d["source"]!r}; valid: '
                                 f'{SOURCES}.')
            if d['resize'] not in RESIZE:
                raise ValueError(f'distill_losses.{name}.resize={d["resize"]!r}; valid: {RESIZE} '
                                 '(None: shapes must match; "student": resize the student map to '
                                 "the teacher's; \"teacher\": the other way).")
            if not isinstance(d['weight'], (int, float)) or d['weight'] < 0:
                raise ValueError(f'distill_losses.{name}.weight={d["weight"]!r}; valid: a '
                                 'number >= 0.')
            index_list = isinstance(d['index'], list)
            call_list = isinstance(d['call'], list)
            if index_list and call_list:
                raise ValueError(f'distill_losses.{name}: index and call are both lists; one '
                                 'declaration expands over one of them (write nested indices '
                                 'as tuples, e.g. index=(0, 2)).')
            if index_list:
                entries = [_Entry(name, _label(i), i, d['call']) for i in d['index']]
            elif call_list:
                entries = [_Entry(name, _label(c), d['index'], c) for c in d['call']]
            else:
                entries = [_Entry(name, None, d['index'], d['call'])]
            if not entries:
                raise ValueError(f'distill_losses.{name}: empty index/call list.')
            d['entries'] = entries
            calls = [0 if e.call is None else e.call for e in entries]
            for c in calls:
                if not isinstance(c, int) or isinstance(c, bool):
                    raise TypeError(f'distill_losses.{name}.call must be an int or a list of '
                                    f'ints, got {c!r}.')
            # a negative call counts from the end: the forward must run to its end
            calls_needed = float('inf') if min(calls) < 0 else max(calls) + 1
            self.student_records.add(d['student'], d['source'], calls_needed)
            self.teacher_records.add(d['teacher'], d['source'], calls_needed)
            self._declarations[name] = d

    @torch.no_grad()
    def _infer_shapes(self):
        """Dry forward of both models (eval mode, no grad) on a fake batch; returns records."""
        h, w = self.dry_run_cfg['input_size']
        in_channels = self.dry_run_cfg['in_channels'] or self._input_channels()
        inputs = torch.randn(1, in_channels, h, w, generator=torch.Generator().manual_seed(0))
        shapes = {}
        for role, model, records in (('student', self.student, self.student_records),
                                     ('teacher', self.teacher, self.teacher_records)):
            modes = {m: m.training for m in model.modules()}
            model.eval()
            device = next(iter(model.parameters()), inputs).device
            try:
                mode = self._dry_forward(role, model, records, inputs.to(device))
                if role == 'teacher':
                    self.teacher_mode = mode
                shapes[role] = {}
                for name, d in self._declarations.items():
                    for e in d['entries']:
                        shapes[role][e.key] = records.get(d[role], d['source'], e.call, e.index)
            finally:
                for m, training in modes.items():
                    m.training = training
                records.clear()  # keeps the taken tensors alive only in `shapes`
        return shapes

    def _dry_forward(self, role, model, records, inputs):
        """Run ``model`` on ``inputs`` until a forward reaches every recorded module.

        Tried in order: ``mode='tensor'`` without data samples, with one fake sample carrying
        image metas (two-stage detectors need them), then ``mode='predict'``: mmdet's and
        mmseg's tensor mode call ``head.forward`` directly, which skips hooks on the head
        module itself, while their predict mode calls the head. Returns the mode that worked;
        the teacher runs in it at every step.
        """
        h, w = inputs.shape[-2:]
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
        errors = []
        fake = [BaseDataElement(metainfo=meta)]
        for mode, samples in (('tensor', None), ('tensor', fake), ('predict', fake)):
            # No early stop: a full forward sees how often each module runs (call=...).
            with records.recording(stop_early=False):
                try:
                    with DefaultScope.overwrite_default_scope(model._mmdiffkd_scope):
                        model(inputs, samples, mode=mode)
                except Exception as err:  # noqa: BLE001 - the model's own complaint
                    errors.append(f'mode={mode!r}, data_samples='
                                  f'{"None" if samples is None else "[metas]"}: '
                                  f'{type(err).__name__}: {err}')
                    continue
                if not records.missing():
                    return mode
                errors.append(f'mode={mode!r}: ran, but never reached {records.missing()}')
        size = self.dry_run_cfg['input_size']
        raise RuntimeError(f'The dry forward of the {role} (a {tuple(inputs.shape)} batch) did '
                           f'not reach every recorded module. If a model rejects the input, '
                           f'set dry_run=dict(input_size=..., in_channels=...) (now {size}) to '
                           f'one it accepts; if a module never runs, record another one. '
                           f'Attempts: {errors}')

    def _input_channels(self):
        mean = getattr(self.data_preprocessor, 'mean', None)
        if torch.is_tensor(mean) and mean.numel() > 0:
            return mean.numel()
        for m in self.student.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                return m.in_channels
        return 3

    def _build_losses(self, shapes):
        for name, d in self._declarations.items():
            loss_cfg = ConfigDict(copy.deepcopy(dict(d['loss'])))
            with DefaultScope.overwrite_default_scope('mmdiffkd'):
                loss_cls = MODELS.get(loss_cfg['type'])
            if loss_cls is None:
                raise KeyError(f'distill_losses.{name}: unknown loss type {loss_cfg["type"]!r} '
                               f'in the mmdiffkd registry; known: {sorted(MODELS.module_dict)}.')
            if getattr(loss_cls, 'diagnostics', ()) and 'loss' in name:
                raise ValueError(f'distill_losses.{name}: the name contains "loss", but '
                                 f'{loss_cls.__name__} logs diagnostics as "{name}.<name>" and '
                                 'MMEngine sums every logged key containing "loss" into the '
                                 'total; rename the declaration without "loss" in it.')
            takes = {k: _accepts(loss_cls.__init__, f'{k}_channels')
                     for k in ('student', 'teacher')}
            d['takes_samples'] = _accepts(loss_cls.forward, 'data_samples')
            modules = []
            for e in d['entries']:
                s, t = shapes['student'][e.key], shapes['teacher'][e.key]
                where = {r: f'{r} record "{d[r]}"' + (f' index {e.index!r}' if e.index is not None
                                                      else '') for r in ('student', 'teacher')}
                self._check_spatial(name, d['resize'], s, t, where)
                cfg = ConfigDict(loss_cfg)
                # A loss may derive more defaults from the records (DiffKD: kernel 1 for
                # (N, C) logits, 3 for maps); values the config gives win.
                from_records = getattr(loss_cls, 'config_from_records', None)
                if from_records is not None:
                    for key, value in from_records(s, t).items():
                        cfg.setdefault(key, value)
                for role, x in (('student', s), ('teacher', t)):
                    if not takes[role]:
                        continue
                    found = feature_channels(x, where[role])
                    given = cfg.get(f'{role}_channels')
                    if given is None:
                        cfg[f'{role}_channels'] = found
                    elif given != found:
                        raise ValueError(
                            f'distill_losses.{name}: {role}_channels={given} is set in the '
                            f'config, but the {where[role]} has {found} channels (shape '
                            f'{tuple(x.shape)}). Remove {role}_channels to use the inferred '
                            f'{found}, or point {role}= at a module with {given} channels.')
                if d['share'] and modules:
                    if cfg != modules[0][1]:
                        raise ValueError(f'distill_losses.{name}: share=True but the entries '
                                         f'need different losses ({modules[0][1]} vs {cfg}).')
                    continue
                with DefaultScope.overwrite_default_scope('mmdiffkd'):
                    modules.append((MODELS.build(cfg), cfg))
            if len(d['entries']) == 1 and d['entries'][0].label is None:
                self.distill_losses[name] = modules[0][0]
            elif d['share']:
                self.distill_losses[name] = modules[0][0]
            else:
                self.distill_losses[name] = nn.ModuleDict(
                    {e.label.replace('.', '_'): m for e, (m, _) in zip(d['entries'], modules)})

    @staticmethod
    def _check_spatial(name, resize, s, t, where):
        if not (torch.is_tensor(s) and torch.is_tensor(t)):
            return
        ss, ts = spatial_shape(s), spatial_shape(t)
        if ss == ts:
            return
        if resize is None or s.dim() != t.dim() or s.dim() < 4:
            raise ValueError(
                f'distill_losses.{name}: the {where["student"]} has spatial shape {ss} (full '
                f'{tuple(s.shape)}) but the {where["teacher"]} has {ts} (full {tuple(t.shape)}). '
                'Pick records of the same stride, or set resize="student" (resize the student '
                'map to the teacher\'s) or resize="teacher" (the other way) for (N, C, H, W) '
                'maps.')

    def _teacher_renorm(self):
        """Per-channel affine map from the student's normalized input to the teacher's."""
        sp = self.data_preprocessor
        tp = getattr(self.teacher, 'data_preprocessor', None)

        def swaps(p):
            # the flag is named differently in mmengine/mmdet, mmseg and mmpretrain
            for attr in ('_channel_conversion', 'channel_conversion', 'to_rgb'):
                if hasattr(p, attr):
                    return bool(getattr(p, attr))
            return False

        def norm(p):
            if p is None or not hasattr(p, '_enable_normalize'):
                return None
            if not p._enable_normalize:
                return 'none', None, None, swaps(p)
            return 'norm', p.mean.flatten().cpu(), p.std.flatten().cpu(), swaps(p)

        s, t = norm(sp), norm(tp)
        if s is None or t is None:
            if tp is not None and type(tp) is not type(sp):
                print_log(f'Teacher data preprocessor {type(tp).__name__} differs from the '
                          f"student's {type(sp).__name__}; the teacher gets the student's batch "
                          'as is.', logger='current', level=30)
            return None
        if s[0] == t[0] == 'none' and s[3] == t[3]:
            return None
        if s[0] == t[0] == 'norm' and s[3] == t[3] and s[1].shape == t[1].shape \
                and torch.equal(s[1], t[1]) and torch.equal(s[2], t[2]):
            return None
        ref = s[1] if s[1] is not None else t[1]
        channels = ref.numel() if ref is not None else 1  # neither normalizes: only a swap
        s_mean = s[1] if s[0] == 'norm' else torch.zeros(channels)
        s_std = s[2] if s[0] == 'norm' else torch.ones(channels)
        t_mean = t[1] if t[0] == 'norm' else torch.zeros(channels)
        t_std = t[2] if t[0] == 'norm' else torch.ones(channels)
        flip = s[3] != t[3]
        # raw = x * std_s + mean_s ; (optionally swap RGB<->BGR) ; x_t = (raw - mean_t) / std_t
        scale_in, shift_in = s_std, s_mean
        if flip:
            scale_in, shift_in = scale_in.flip(0), shift_in.flip(0)
        scale = scale_in / t_std
        shift = (shift_in - t_mean) / t_std
        print_log(f'Teacher and student normalize inputs differently (student mean '
                  f'{s_mean.tolist()}, std {s_std.tolist()}, teacher mean {t_mean.tolist()}, std '
                  f'{t_std.tolist()}, channel order {"swapped" if flip else "same"}); the '
                  "teacher's inputs are renormalized.", logger='current')
        return dict(flip=flip, scale=scale.view(1, -1, 1, 1), shift=shift.view(1, -1, 1, 1))

    def teacher_inputs(self, inputs):
        """The batch as the teacher's own data preprocessor would have made it."""
        n = self._teacher_norm
        if n is None or not torch.is_tensor(inputs) or inputs.dim() != 4:
            return inputs
        if n['flip']:
            inputs = inputs.flip(1)
        return inputs * n['scale'].to(inputs) + n['shift'].to(inputs)

    # ---- MMEngine hooks into the module --------------------------------------------------------

    def init_weights(self):
        """Initialise the student and the losses, then load the student checkpoint (if any).

        The teacher is not a child module, so its loaded weights are never re-initialised.
        """
        super().init_weights()
        if self.student_checkpoint is not None:
            load_weights(self.student, self.student_checkpoint, 'student')
        if self.init_distill_losses is not None:
            load_weights(self.distill_losses, self.init_distill_losses, 'init_distill_losses')

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()  # BatchNorm and dropout of the teacher stay in eval mode
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        if self._teacher_norm is not None:
            for k in ('scale', 'shift'):
                self._teacher_norm[k] = fn(self._teacher_norm[k])
        return self

    def extra_repr(self):
        return (f'teacher={type(self.teacher).__name__} (frozen, outside parameters(); '
                f'checkpoint={self.teacher_checkpoint!r})')

    # ---- forward -------------------------------------------------------------------------------

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
            out = p.module(p.student, p.teacher, data_samples) if p.takes_samples \
                else p.module(p.student, p.teacher)
            self._put(losses, p.key, out, p.weight)
        return losses

    def distill_pairs(self, inputs, data_samples=None, run_student=True):
        """Run the teacher (no grad) and the student (``mode='loss'``) once on a batch.

        Returns ``(student_losses, pairs)``: the student's task losses and one
        :class:`DistillPair` per loss entry, holding the records exactly as the loss sees them
        (indexed, detached teacher, resized). Hooks and tools use it to look at what is
        distilled; with ``run_student=False`` only the teacher runs (``student_losses`` is
        empty and every ``pair.student`` is None), e.g. to pre-train DiffKD on teacher features.
        """
        if self.teacher.training:
            self.teacher.eval()
        teacher_inputs = self.teacher_inputs(inputs)
        losses, pairs = {}, []
        try:
            with torch.no_grad():
                self.teacher_records.run(lambda: self._teacher_forward(teacher_inputs,
                                                                       data_samples),
                                         stop_early=self.stop_teacher_early)
            if run_student:
                with self.student_records.recording():
                    losses = dict(self.student(inputs, data_samples, mode='loss'))
                if 'loss' in losses:
                    # mmpretrain's heads return their loss as the bare key 'loss', the key
                    # MMEngine's parse_losses gives the total: it would log the student's loss
                    # as the total.
                    losses['loss_student'] = losses.pop('loss')
            for name, d in self._declarations.items():
                module = self.distill_losses[name]
                for e in d['entries']:
                    t = self.teacher_records.get(d['teacher'], d['source'], e.call, e.index)
                    if torch.is_tensor(t):
                        t = t.detach()
                    s = None
                    if run_student:
                        s = self.student_records.get(d['student'], d['source'], e.call, e.index)
                        s, t = self._match(name, d, e, s, t)
                    loss_fn = module[e.label.replace('.', '_')] \
                        if isinstance(module, nn.ModuleDict) else module
                    pairs.append(DistillPair(e.key, loss_fn, s, t, d['weight'],
                                             d['takes_samples']))
        finally:
            self.student_records.clear()
            self.teacher_records.clear()
        return losses, pairs

    def _teacher_forward(self, inputs, data_samples):
        if self.teacher_mode == 'predict' and data_samples is not None:
            # predict writes its results into the samples: give it metas only, not the
            # student's samples (and no copy of their ground truth)
            data_samples = [type(s)(metainfo=s.metainfo) for s in data_samples]
        return self.teacher(inputs, data_samples, mode=self.teacher_mode)

    def _match(self, name, d, e, s, t):
        if not (torch.is_tensor(s) and torch.is_tensor(t)):
            return s, t
        if spatial_shape(s) == spatial_shape(t):
            return s, t
        where = {r: f'{r} record "{d[r]}"' for r in ('student', 'teacher')}
        self._check_spatial(name, d['resize'], s, t, where)
        if d['resize'] == 'student':
            return resize_to(s, t.shape[2:]), t
        return s, resize_to(t, s.shape[2:])

    @staticmethod
    def _put(losses, entry, out, weight):
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
