"""Build a student or teacher model from a config in its own registry scope.

A model may be given as a model dict (``{{_base_.model}}``), or as ``config=`` an inline dict,
a config file path or a cross-repo path ``'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'``.
Its scope (mmdet / mmseg / mmpretrain) is taken, first match wins, from: a ``_scope_`` key, the
config file's ``default_scope``, a scope prefix in ``type`` (``'mmdet.RetinaNet'``), the scope
the runner is building in (when the type is registered there), or a search of the known scopes.

:func:`build_member` builds the distiller's student or teacher from such a spec;
:func:`load_weights` loads a checkpoint into it, strictly and with ``weights_only=True``.
"""
import copy
import os.path as osp

import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

KNOWN_SCOPES = ('mmdet', 'mmseg', 'mmpretrain')
SEARCHED_SCOPES = KNOWN_SCOPES + ('mmengine', )
PACKAGE_OF_SCOPE = {'mmdet': 'mmdet', 'mmseg': 'mmseg', 'mmpretrain': 'mmpretrain',
                    'mmsegmentation': 'mmseg'}


def resolve_config_path(path):
    """Local file, or ``pkg::rel/path.py`` inside an installed OpenMMLab package (never installs).

    MMEngine's ``get_config`` would ``pip install`` a missing package; we only look.
    """
    if '::' not in path:
        path = osp.expanduser(path)
        if not osp.isfile(path):
            raise FileNotFoundError(f'Config file {path!r} does not exist (expected a local .py '
                                    'file or a cross-repo path like "mmdet::retinanet/'
                                    'retinanet_r50_fpn_1x_coco.py").')
        return path
    package, rel = path.split('::', 1)
    import importlib.util
    package = PACKAGE_OF_SCOPE.get(package, package)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f'Config {path!r} needs the package {package!r}, which is not '
                                  f'installed (known: {", ".join(KNOWN_SCOPES)}).')
    root = list(spec.submodule_search_locations)[0]
    full = osp.join(root, '.mim', 'configs', rel)
    if not osp.isfile(full):
        raise FileNotFoundError(f'Config {path!r}: no file {full!r}. Paths are relative to the '
                                f'configs/ folder of {package} (e.g. "{package}::_base_/...").')
    return full


def load_model_spec(spec, role):
    """Split a student/teacher spec into (model cfg, scope hint, the spec's other keys)."""
    if isinstance(spec, str):
        spec = dict(config=spec)
    if not isinstance(spec, dict):
        raise TypeError(f'{role} must be a model dict, or dict(config=...) with a config dict, '
                        f'a file path or "mmdet::..."; got {type(spec).__name__}.')
    spec = dict(spec)
    if 'config' not in spec:
        if 'type' not in spec:
            raise KeyError(f'{role} has neither "type" (a model dict) nor "config" (a config '
                           f'dict or path); got keys {sorted(spec)}.')
        return ConfigDict(spec), None, {}
    config = spec.pop('config')
    scope = None
    experiment = None
    if isinstance(config, str):
        experiment = Config.fromfile(resolve_config_path(config))
        if 'model' not in experiment:
            raise KeyError(f'{role} config {config!r} has no "model" entry.')
    elif isinstance(config, (dict, Config)):
        if 'model' in config and 'type' not in config:   # a whole experiment config
            experiment = config
        else:
            model_cfg = ConfigDict(config)
    else:
        raise TypeError(f'{role}.config must be a dict or a path, got {type(config).__name__}.')
    if experiment is not None:
        scope = experiment.get('default_scope', None)
        model_cfg = ConfigDict(experiment['model'])
        # As MMEngine's Runner does: an experiment's top-level data_preprocessor (mmpretrain
        # configs keep mean/std there) belongs to its model.
        if experiment.get('data_preprocessor') is not None:
            model_cfg.setdefault('data_preprocessor', ConfigDict(experiment['data_preprocessor']))
    return model_cfg, scope, spec


def _registered_in(scope, type_name):
    import importlib
    try:
        registry = importlib.import_module(f'{scope}.registry').MODELS
    except Exception:  # package missing or cannot import (e.g. mmcv absent)
        return False
    try:
        registry.import_from_location()
        return type_name in registry.module_dict
    except Exception:
        return False


def infer_scope(model_cfg, file_scope, role):
    """The registry scope to build ``model_cfg`` in, with a clear error when none is found."""
    if model_cfg.get('_scope_'):
        return model_cfg['_scope_']
    if file_scope:
        return file_scope
    type_name = model_cfg.get('type')
    if not isinstance(type_name, str):
        return None  # a class object: nothing to resolve
    if '.' in type_name:
        return type_name.split('.', 1)[0]
    current = DefaultScope.get_current_instance()
    if current is not None and current.scope_name not in (None, 'mmdiffkd', 'mmengine') \
            and _registered_in(current.scope_name, type_name):
        return current.scope_name
    found = [s for s in SEARCHED_SCOPES if _registered_in(s, type_name)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise KeyError(f'Cannot find the scope of {role} type {type_name!r}: it is registered in '
                       f'none of {SEARCHED_SCOPES} (is the package installed and importable?). '
                       f'Write type="mmdet.{type_name}" or add _scope_="mmdet" (or mmseg / '
                       'mmpretrain) to the model dict.')
    raise KeyError(f'{role} type {type_name!r} is registered in several scopes {found}; add '
                   f'_scope_=<one of them> to the model dict.')


def build_model_in_scope(model_cfg, scope):
    """Build with MMEngine's root MODELS while ``scope`` is the default scope (so nested
    ``type='ResNet'`` resolve in mmdet/mmseg/mmpretrain, not in mmdiffkd)."""
    model_cfg = ConfigDict(model_cfg)
    model_cfg.pop('_scope_', None)
    if scope is None:
        return ROOT_MODELS.build(model_cfg)
    with DefaultScope.overwrite_default_scope(scope):
        return ROOT_MODELS.build(model_cfg)


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
        check_file(checkpoint, f'{role} checkpoint')
    scope = infer_scope(model_cfg, file_scope, role)
    model = build_model_in_scope(model_cfg, scope)
    model._mmdiffkd_scope = scope
    if not isinstance(model, BaseModel):
        raise TypeError(f'{role} must build an MMEngine BaseModel (a detector, segmentor or '
                        f'classifier), got {type(model).__name__}.')
    return model, checkpoint


def check_file(filename, role):
    """A local file that exists, or a URL; else an error naming ``role``."""
    if not isinstance(filename, str):
        raise TypeError(f'{role} must be a path or URL string, got {type(filename).__name__}.')
    if '://' not in filename and not osp.isfile(osp.expanduser(filename)):
        raise FileNotFoundError(f'{role} {filename!r} does not exist (expected a local .pth '
                                'file or an http(s):// URL).')


def load_weights(model, filename, role):
    """Load ``filename`` into ``model`` with ``torch.load(weights_only=True)``, strictly."""
    check_file(filename, f'{role} checkpoint')
    from mmdiffkd.engine.checkpoint import load_checkpoint_safe
    return load_checkpoint_safe(model, filename, map_location='cpu', strict=True)
