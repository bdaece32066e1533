"""Registries of the ``mmdiffkd`` scope, children of MMEngine's roots (as mmdet's are).

Configs either set ``default_scope='mmdiffkd'`` or write ``type='mmdiffkd.X'``; types of
mmdet / mmseg / mmpretrain still resolve through their own scope prefix
(``type='mmdet.RetinaNet'``), and the distiller builds its student and teacher in the
scope of their own configs. Every MMEngine root has a child here, so a config whose default
scope is ``mmdiffkd`` finds MMEngine's optimizers, schedulers, samplers, ... without warnings.
"""
from mmengine import registry as root
from mmengine.registry import Registry


def _child(parent, name, locations=()):
    return Registry(name, parent=parent, scope='mmdiffkd', locations=list(locations))


_MODELS = ['mmdiffkd.models']
_ENGINE = ['mmdiffkd.engine']
_DATA = ['mmdiffkd.datasets']

RUNNERS = _child(root.RUNNERS, 'runner')
RUNNER_CONSTRUCTORS = _child(root.RUNNER_CONSTRUCTORS, 'runner constructor')
LOOPS = _child(root.LOOPS, 'loop', _ENGINE)
HOOKS = _child(root.HOOKS, 'hook', _ENGINE)
STRATEGIES = _child(root.STRATEGIES, 'strategy')
DATASETS = _child(root.DATASETS, 'dataset', _DATA)
DATA_SAMPLERS = _child(root.DATA_SAMPLERS, 'data sampler', _DATA)
TRANSFORMS = _child(root.TRANSFORMS, 'transform', _DATA)
MODELS = _child(root.MODELS, 'model', _MODELS)
MODEL_WRAPPERS = _child(root.MODEL_WRAPPERS, 'model_wrapper', _ENGINE)
WEIGHT_INITIALIZERS = _child(root.WEIGHT_INITIALIZERS, 'weight initializer')
OPTIMIZERS = _child(root.OPTIMIZERS, 'optimizer')
OPTIM_WRAPPERS = _child(root.OPTIM_WRAPPERS, 'optim_wrapper', _ENGINE)
OPTIM_WRAPPER_CONSTRUCTORS = _child(root.OPTIM_WRAPPER_CONSTRUCTORS,
                                    'optimizer wrapper constructor', _ENGINE)
PARAM_SCHEDULERS = _child(root.PARAM_SCHEDULERS, 'parameter scheduler')
METRICS = _child(root.METRICS, 'metric')
EVALUATOR = _child(root.EVALUATOR, 'evaluator')
TASK_UTILS = _child(root.TASK_UTILS, 'task util')
VISUALIZERS = _child(root.VISUALIZERS, 'visualizer')
VISBACKENDS = _child(root.VISBACKENDS, 'vis_backend')
LOG_PROCESSORS = _child(root.LOG_PROCESSORS, 'log_processor')
INFERENCERS = _child(root.INFERENCERS, 'inferencer')
FUNCTIONS = _child(root.FUNCTIONS, 'function')
