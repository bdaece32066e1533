"""Build a model from a config in its own registry scope (mmdet, mmseg, mmpretrain).

A model may be given as a model dict (``{{_base_.model}}``), or as ``config=`` an inline dict,
a config file path or a cross-repo path ``'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'``
(:func:`load_model_spec`). Its scope is taken, first match wins, from: a ``_scope_`` key, the
config file's ``default_scope``, a scope prefix in ``type`` (``'mmdet.RetinaNet'``), the scope
the runner is building in (when the type is registered there), or a search of the known scopes
(:func:`infer_scope`); :func:`build_model_in_scope` builds it there. The distiller builds its
student and teacher with these, the export and publish tools a student from its own config.
"""
import importlib
import importlib.util
import os.path as osp

from mmengine.config import Config, ConfigDict
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
