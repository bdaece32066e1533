"""The distiller's student and teacher, built from their specs (see :mod:`mmdiffkd.utils.builder`).

:func:`build_member` builds the student or the teacher from a model dict or ``config=`` spec and
checks that its checkpoint is there; the distiller loads it with
:func:`mmdiffkd.utils.load_checkpoint_safe` (strict, ``weights_only=True``).
"""
import copy

import torch.nn as nn
from mmengine.model import BaseModel

from mmdiffkd.utils.builder import build_model_in_scope, infer_scope, load_model_spec
from mmdiffkd.utils.integrity import check_checkpoint_path


def with_default_preprocessor(spec, data_preprocessor):
    """``spec`` with ``data_preprocessor`` as its default, as MMEngine's Runner gives a model
    the experiment's top-level one (``model.setdefault('data_preprocessor', ...)``).

    Applies to a model dict and to ``dict(config=<model dict>)``; a model given as a config
    file gets that experiment's own (``load_model_spec``), a built module keeps its own.
    """
    if data_preprocessor is None or not isinstance(spec, dict):
        return spec
    spec = copy.copy(spec)
    if 'type' in spec and 'config' not in spec:
        spec.setdefault('data_preprocessor', copy.deepcopy(data_preprocessor))
    elif isinstance(spec.get('config'), dict) and 'type' in spec['config']:
        spec['config'] = copy.copy(spec['config'])
        spec['config'].setdefault('data_preprocessor', copy.deepcopy(data_preprocessor))
    return spec


def build_member(spec, role):
    """Build the student or the teacher; returns ``(model, checkpoint or None)``."""
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
        check_checkpoint_path(checkpoint, f'{role} checkpoint')
    scope = infer_scope(model_cfg, file_scope, role)
    model = build_model_in_scope(model_cfg, scope)
    model._mmdiffkd_scope = scope
    if not isinstance(model, BaseModel):
        raise TypeError(f'{role} must build an MMEngine BaseModel (a detector, segmentor or '
                        f'classifier), got {type(model).__name__}.')
    return model, checkpoint
