"""The ``distill_losses`` block of a config, parsed once into frozen, self-checking objects.

One declaration (``name -> dict(loss=..., student=..., ...)``) becomes a :class:`Declaration`
holding one :class:`Entry` per loss term (a list ``index`` or ``call`` expands into several),
each entry one :class:`Record` per side. Everything a config can get wrong without running a
model is refused here, naming the key and what would be valid; what needs the models' outputs
(shapes, channels) is checked by ``plan.py`` on the dry-forward records.

A side is a module path (``student='neck'``) or a dict with per-side options::

    student=dict(path='backbone.ln1', index=None, source='output', call=None,
                 transform=[dict(type='drop_tokens', n=2), 'mean_tokens'])

The declaration-level ``index`` / ``call`` / ``source`` apply to both sides; a side may set its
own instead (not both). The teacher side defaults to the student's (path and options).
"""
import copy
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

from mmdiffkd.registry import MODELS

from ..losses.base import DistillLoss
from .recorders import SOURCES
from .transforms import build_transforms

DECLARATION_KEYS = ('loss', 'student', 'teacher', 'index', 'call', 'source', 'weight', 'share',
                    'resize')
SIDE_KEYS = ('path', 'index', 'call', 'source', 'transform')
SHARED_KEYS = ('index', 'call', 'source')  # at the declaration (both sides) or per side
RESIZE = (None, 'student', 'teacher')
ROLES = ('student', 'teacher')


@dataclass(frozen=True)
class Record:
    """Where one side of one loss entry is read, and how it is transformed."""

    owner: str                 # 'distill_losses.<name>', for messages
    role: str                  # 'student' or 'teacher'
    path: str                  # module path in the model
    source: str = 'output'     # 'output' or 'input'
    index: Any = None          # None, an int / str, or a tuple (nested)
    call: Optional[int] = None  # which call of a module that runs several times
    transforms: tuple = ()

    @property
    def calls_needed(self):
        """How many calls of the module the forward must reach before it may stop."""
        if self.call is None:
            return 1
        return float('inf') if self.call < 0 else self.call + 1

    def describe(self) -> str:
        """``student record "neck" index=0 transform=[...]``: the record as a config names it."""
        text = f'{self.role} record "{self.path}"'
        if self.source != 'output':
            text += f' source={self.source!r}'
        if self.index is not None:
            text += f' index={self.index!r}'
        if self.call is not None:
            text += f' call={self.call}'
        if self.transforms:
            text += ' transform=[' + ', '.join(str(t) for t in self.transforms) + ']'
        return text

    def error(self, message: str) -> str:
        return f'{self.owner}: the {self.describe()}: {message}'

    def read(self, recorders) -> torch.Tensor:
        """The record of the last recorded forward, indexed and transformed."""
        value = recorders.get(self.path, self.source, self.call, self.index)
        if not torch.is_tensor(value):
            raise TypeError(self.error(_not_a_tensor(value)))
        for transform in self.transforms:
            try:
                value = transform(value)
            except ValueError as err:
                raise ValueError(self.error(str(err))) from None
        return value


def _not_a_tensor(value) -> str:
    if isinstance(value, (list, tuple)):
        return (f'is a {type(value).__name__} of {len(value)}, not a tensor; set index= to pick '
                f'one element (an int in [0, {len(value)})), or index=[0, ..., '
                f'{len(value) - 1}] for one loss per element.')
    if isinstance(value, dict):
        return (f'is a dict, not a tensor; set index= to one of its keys {sorted(value)}.')
    return f'is a {type(value).__name__}, not a tensor; record another module.'


@dataclass(frozen=True)
class Entry:
    """One loss term: its two records, its weight and how it is named and stored."""

    name: str                  # the declaration's name
    label: Optional[str]       # the list entry ('0', '0_2'), None for a single entry
    student: Record
    teacher: Record
    weight: float
    resize: Optional[str]
    uses_samples: bool

    @property
    def key(self) -> str:
        """The log key stem: ``loss_<key>[_<part>]``."""
        return self.name if self.label is None else f'{self.name}_{self.label}'

    @property
    def module_key(self) -> Optional[str]:
        """Key in the declaration's ModuleDict (None when the declaration has one module)."""
        return None if self.label is None else self.label.replace('.', '_')

    def match(self, student: torch.Tensor, teacher: torch.Tensor):
        """Apply ``resize`` (bilinear) when the two maps' grids differ."""
        if self.resize is None or student.shape[2:] == teacher.shape[2:]:
            return student, teacher
        if student.dim() not in (4, 5) or teacher.dim() != student.dim():
            raise ValueError(f'distill_losses.{self.name}: resize={self.resize!r} resizes '
                             f'(B, C, H, W) maps; got the {self.student.describe()} '
                             f'{tuple(student.shape)} and the {self.teacher.describe()} '
                             f'{tuple(teacher.shape)}. Turn tokens into a map first '
                             f"(transform='tokens_to_map') or drop resize.")
        mode = 'trilinear' if student.dim() == 5 else 'bilinear'
        if self.resize == 'student':
            return F.interpolate(student, size=teacher.shape[2:], mode=mode,
                                 align_corners=False), teacher
        return student, F.interpolate(teacher, size=student.shape[2:], mode=mode,
                                      align_corners=False)


@dataclass(frozen=True)
class Declaration:
    """One ``distill_losses`` block: the loss class and config, and its entries."""

    name: str
    loss_cls: type
    loss_cfg: dict
    share: bool
    entries: Tuple[Entry, ...]

    @property
    def single(self) -> bool:
        """One module under ``distill_losses.<name>`` (one entry, or shared), else a ModuleDict."""
        return self.share or (len(self.entries) == 1 and self.entries[0].label is None)

    @classmethod
    def parse(cls, name, cfg) -> 'Declaration':
        owner = f'distill_losses.{name}'
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f'distill loss name {name!r} must be an identifier (it becomes '
                             'the log key loss_<name>).')
        if not isinstance(cfg, dict):
            raise TypeError(f'{owner} must be a dict, got {type(cfg).__name__}.')
        unknown = set(cfg) - set(DECLARATION_KEYS)
        if unknown:
            raise KeyError(f'{owner} has unknown keys {sorted(unknown)}; valid keys: '
                           f'{list(DECLARATION_KEYS)}.')
        for key in ('loss', 'student'):
            if key not in cfg:
                raise KeyError(f'{owner} needs "{key}".')
        loss_cls, loss_cfg = _loss_class(owner, name, cfg['loss'])
        weight = cfg.get('weight', 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f'{owner}.weight={weight!r}; valid: a number >= 0.')
        share = cfg.get('share', False)
        if not isinstance(share, bool):
            raise ValueError(f'{owner}.share={share!r}; valid: True or False.')
        resize = cfg.get('resize')
        if resize not in RESIZE:
            raise ValueError(f'{owner}.resize={resize!r}; valid: {RESIZE} (None: shapes must '
                             'match; "student": resize the student map to the teacher\'s; '
                             '"teacher": the other way).')
        shared = {k: cfg[k] for k in SHARED_KEYS if k in cfg}
        sides = {role: _side(owner, role, cfg.get(role, cfg['student']), shared)
                 for role in ROLES}
        expand = [k for k in ('index', 'call') if isinstance(shared.get(k), list)]
        if len(expand) > 1:
            raise ValueError(f'{owner}: index and call are both lists; one declaration expands '
                             'over one of them (write nested indices as tuples, e.g. '
                             'index=(0, 2)).')
        values = shared[expand[0]] if expand else [None]
        if not values:
            raise ValueError(f'{owner}: empty {expand[0]} list.')
        entries = []
        for value in values:
            records = {}
            for role in ROLES:
                side = dict(sides[role])
                if expand:
                    side[expand[0]] = value
                records[role] = _record(owner, role, side)
            label = None if not expand else (
                '_'.join(str(v) for v in value) if isinstance(value, (list, tuple))
                else str(value))
            entries.append(Entry(name, label, records['student'], records['teacher'],
                                 float(weight), resize, loss_cls.uses_samples))
        return cls(name, loss_cls, loss_cfg, share, tuple(entries))


def parse_declarations(declarations) -> Tuple[Declaration, ...]:
    if declarations is None:
        return ()
    if not isinstance(declarations, dict):
        raise TypeError('distill_losses must be a dict name -> dict(loss=..., student=..., '
                        f'teacher=..., ...), got {type(declarations).__name__}.')
    return tuple(Declaration.parse(name, cfg) for name, cfg in declarations.items())


def _loss_class(owner, name, loss):
    if not isinstance(loss, dict) or 'type' not in loss:
        raise TypeError(f'{owner}.loss must be a dict with "type" (e.g. dict(type="DiffKD")); '
                        f'got {loss!r}.')
    loss_cfg = copy.deepcopy(dict(loss))
    if 'loss_weight' in loss_cfg:
        raise ValueError(f'{owner}.loss has loss_weight={loss_cfg["loss_weight"]!r}: '
                         f'distillation losses have no loss_weight; the declaration\'s weight '
                         f'is the one loss weight. Write {owner}.weight='
                         f'{loss_cfg["loss_weight"]!r} next to loss=..., and drop loss_weight.')
    with DefaultScope.overwrite_default_scope('mmdiffkd'):
        loss_cls = MODELS.get(loss_cfg['type'])
    if loss_cls is None:
        raise KeyError(f'{owner}: unknown loss type {loss_cfg["type"]!r} in the mmdiffkd '
                       f'registry; known: {sorted(MODELS.module_dict)}.')
    if not (isinstance(loss_cls, type) and issubclass(loss_cls, DistillLoss)):
        raise TypeError(f'{owner}: {getattr(loss_cls, "__name__", loss_cls)} is not a '
                        f'mmdiffkd.models.losses.base.DistillLoss; a distillation loss must '
                        f'subclass it (it declares whether the loss takes channel counts, '
                        f'which records it accepts, and its diagnostics).')
    if loss_cls.diagnostics and 'loss' in name:
        raise ValueError(f'{owner}: the name contains "loss", but {loss_cls.__name__} logs '
                         f'diagnostics as "{name}.<name>" and MMEngine sums every logged key '
                         'containing "loss" into the total; rename the declaration without '
                         '"loss" in it.')
    return loss_cls, loss_cfg


def _side(owner, role, spec, shared):
    """A side as a dict with every key of SIDE_KEYS (the declaration's shared keys filled in)."""
    where = f'{owner}.{role}'
    if isinstance(spec, str):
        spec = dict(path=spec)
    if not isinstance(spec, dict):
        raise TypeError(f'{where} must be a module path or dict(path=..., index=..., '
                        f'transform=...); got {type(spec).__name__}.')
    unknown = set(spec) - set(SIDE_KEYS)
    if unknown:
        raise KeyError(f'{where} has unknown keys {sorted(unknown)}; valid: {list(SIDE_KEYS)}.')
    if 'path' not in spec:
        raise KeyError(f'{where} needs "path" (a module path such as "backbone.layer4").')
    both = sorted(set(spec) & set(shared))
    if both:
        raise ValueError(f'{where} sets {both}, which the declaration also sets for both sides; '
                         f'set them in one place.')
    for key in ('index', 'call'):
        if isinstance(spec.get(key), list):
            raise ValueError(f'{where}.{key} is a list: a list expands the declaration into one '
                             f'loss per element and is written at the declaration level '
                             f'({owner}.{key}=[...]); a side takes one {key} (nested indices '
                             f'as a tuple).')
    side = dict(index=None, call=None, source='output', transform=None)
    side.update(shared)
    side.update(spec)
    return side


def _record(owner, role, side) -> Record:
    where = f'{owner}.{role}'
    if side['source'] not in SOURCES:
        raise ValueError(f'{owner}: source={side["source"]!r} ({role} side); valid: {SOURCES}.')
    call = side['call']
    if call is not None and (not isinstance(call, int) or isinstance(call, bool)):
        raise TypeError(f'{owner}: call must be an int or a list of ints ({role} side), got '
                        f'{call!r}.')
    index = side['index']
    if isinstance(index, list):
        index = tuple(index)
    return Record(owner, role, side['path'], side['source'], index, call,
                  build_transforms(side['transform'], where))
