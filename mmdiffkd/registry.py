"""Registries of the ``mmdiffkd`` scope, children of MMEngine's roots.

Configs either set ``default_scope='mmdiffkd'`` or write ``type='mmdiffkd.X'``; types of
mmdet / mmseg / mmpretrain still resolve through their own scope prefix
(``type='mmdet.RetinaNet'``), and the distiller builds its student and teacher in the
scope of their own configs.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmdiffkd',
                  locations=['mmdiffkd.models'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='mmdiffkd',
                          locations=['mmdiffkd.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmdiffkd', locations=['mmdiffkd.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='mmdiffkd', locations=['mmdiffkd.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope='mmdiffkd', locations=['mmdiffkd.engine'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmdiffkd',
                    locations=['mmdiffkd.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='mmdiffkd',
                      locations=['mmdiffkd.datasets'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='mmdiffkd',
                   locations=['mmdiffkd.evaluation'])
