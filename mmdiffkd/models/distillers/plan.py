"""From declarations and dry-forward records to built loss modules: everything settled at build.

For every entry the records the dry forward took (batch 1, after per-side transforms) are
checked, and the loss config is completed from them:

1. one row per image on both sides (a RoI-level or window-level record is refused);
2. ``resize`` applied as at every step (maps only);
3. the loss's own defaults from the records (``config_from_records``: DiffKD's kernel size) and,
   for a loss that ``takes_channels``, ``student_channels`` / ``teacher_channels`` (a value the
   config gives must equal the record's);
4. ``check_records``: whatever else the loss's forward would refuse.

Each error names the declaration, both records and a fix. Then one module is built per entry
(one per declaration with ``share=True``), under the same ``distill_losses.*`` keys as always.
"""
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope

from mmdiffkd.registry import MODELS

from ..losses.base import channels_of, positions


def check_batch(record, value, batch: int) -> None:
    """The dry batch has ``batch`` images: a record must have one row per image."""
    if value.dim() < 2 or value.shape[0] != batch:
        raise ValueError(record.error(
            f'has shape {tuple(value.shape)}, but the dry forward ran {batch} image(s), so its '
            f'first axis should be {batch}: the record is not one row per image (RoI-level '
            f'features of a two-stage detector, Swin windows, or an index that sliced the batch '
            f'axis). Record an image-level module (backbone, neck, RPN) or its output tuple '
            f'with index=.'))


def layout_hint(student, teacher) -> str:
    """How a config can reconcile two records, from their shapes."""
    s, t = student.dim(), teacher.dim()
    if s == t == 4 and positions(student) != positions(teacher):
        return ('Fix: records of the same stride, or resize="student" / resize="teacher" '
                '(bilinear).')
    if {s, t} == {3, 4}:
        tokens = 'student' if s == 3 else 'teacher'
        return (f"Fix: on the {tokens} side transform='tokens_to_map' (drop class / "
                f"distillation tokens first with dict(type='drop_tokens', n=...)), or "
                f"'map_to_tokens' on the other side.")
    if {s, t} == {2, 3}:
        tokens = 'student' if s == 3 else 'teacher'
        return (f"Fix: on the {tokens} side transform='mean_tokens' (after "
                f"dict(type='drop_tokens', n=...) for class / distillation tokens).")
    if s == t == 3 and positions(student) != positions(teacher):
        return ("Fix: drop the extra class / distillation tokens with "
                "transform=dict(type='drop_tokens', n=...) on the longer side.")
    if {s, t} == {2, 4}:
        return ('Fix: record a pooled feature (the neck, or the head\'s input) on the map side, '
                'or a map on the other.')
    return ''


def entry_config(decl, entry, student, teacher):
    """The loss config of one entry, completed and checked against its dry records."""
    loss_cls = decl.loss_cls
    cfg = ConfigDict(decl.loss_cfg)
    where = (f'distill_losses.{entry.name}: the {entry.student.describe()} '
             f'{tuple(student.shape)} and the {entry.teacher.describe()} '
             f'{tuple(teacher.shape)}')
    for key, value in loss_cls.config_from_records(student, teacher).items():
        cfg.setdefault(key, value)
    if loss_cls.takes_channels:
        for role, record, x in (('student', entry.student, student),
                                ('teacher', entry.teacher, teacher)):
            found, given = channels_of(x), cfg.get(f'{role}_channels')
            if given is None:
                cfg[f'{role}_channels'] = found
            elif given != found:
                raise ValueError(
                    f'distill_losses.{entry.name}: {role}_channels={given} is set in the '
                    f'config, but the {record.describe()} has {found} channels (shape '
                    f'{tuple(x.shape)}). Remove {role}_channels to use the inferred {found}, '
                    f'or point {role}= at a module with {given} channels.')
    try:
        loss_cls.check_records(student, teacher, cfg)
    except ValueError as err:
        raise ValueError(f'{where}: {err} {layout_hint(student, teacher)}'.rstrip()) from None
    return cfg


def build_losses(declarations, records, batch: int = 1) -> nn.ModuleDict:
    """``distill_losses``: the modules of every declaration, checked against ``records``
    (``{'student': {entry key: tensor}, 'teacher': {...}}``, the dry-forward records)."""
    modules = nn.ModuleDict()
    for decl in declarations:
        built = []
        for entry in decl.entries:
            s, t = records['student'][entry.key], records['teacher'][entry.key]
            check_batch(entry.student, s, batch)
            check_batch(entry.teacher, t, batch)
            s, t = entry.match(s, t)
            cfg = entry_config(decl, entry, s, t)
            if decl.share and built:
                if cfg != built[0][1]:
                    raise ValueError(f'distill_losses.{decl.name}: share=True but the entries '
                                     f'need different losses ({built[0][1]} vs {cfg}).')
                continue
            with DefaultScope.overwrite_default_scope('mmdiffkd'):
                built.append((MODELS.build(cfg), cfg))
        if decl.single:
            modules[decl.name] = built[0][0]
        else:
            modules[decl.name] = nn.ModuleDict(
                {e.module_key: m for e, (m, _) in zip(decl.entries, built)})
    return modules
