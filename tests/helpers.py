"""Helpers shared by test files; import them by module name (setup.cfg's ``pythonpath = tests``
puts this folder on the path, for every sub-folder). Models and data live in ``tiny_models``,
fault injection in ``fault_helpers``, fixtures in ``conftest.py``.

- ``REPO``, ``TESTS_DIR``, ``DATA_DIR``: where things are.
- :func:`load_tool`: a script of ``tools/`` imported as a module, to run its ``main`` in-process.
- :func:`write_experiment`: a complete toy distillation experiment (config file, registered
  dataset and metric; torch + MMEngine only) written to a folder, for the tools' tests.
- :func:`shrink_scenes_config`: a ``configs/scenes`` config on a tiny generated set.
- :func:`free_port`, :func:`count_hooks`.
"""
import importlib.util
import os.path as osp
import socket
import textwrap

import torch.nn as nn
from tiny_models import toy_teacher_checkpoint

TESTS_DIR = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(TESTS_DIR)
DATA_DIR = osp.join(TESTS_DIR, 'data')


TOY_DATA = '''
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import DATASETS, METRICS
from mmengine.structures import BaseDataElement


@DATASETS.register_module(force=True)
class ToolsToyImages(torch.utils.data.Dataset):
    """Fixed uint8 images with labels (no augmentation)."""
    metainfo = dict(classes=('a', 'b', 'c', 'd'))

    def __init__(self, num=8, size=16):
        self.num, self.size = num, size

    def __len__(self):
        return self.num

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(100 + i)
        image = torch.randint(0, 256, (3, self.size, self.size), generator=g, dtype=torch.uint8)
        return dict(inputs=image, data_samples=BaseDataElement(gt_label=torch.tensor(i % 4)))


@METRICS.register_module(force=True)
class ToolsToyAccuracy(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        for s in data_samples:
            self.results.append(float(int(s['pred_label']) == int(s['gt_label'])))

    def compute_metrics(self, results):
        return dict(accuracy=100.0 * sum(results) / max(len(results), 1))
'''

CONFIG = '''
custom_imports = dict(imports=['tiny_models', 'toy_data'], allow_failed_imports=False)
default_scope = 'mmengine'  # the task repo's scope, as a distillation config inherits it
preprocessor = dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3)
model = dict(
    type='mmdiffkd.Distiller',
    student=dict(type='ToyClassifier', width=8, data_preprocessor=preprocessor),
    teacher=dict(config=dict(type='ToyClassifier', width=16, data_preprocessor=preprocessor),
                 checkpoint={teacher!r}),
    distill_losses=dict(
        feat=dict(loss=dict(type='FitNets'), student='stage2', teacher='stage2'),
        logits=dict(loss=dict(type='MSE'), student='fc', teacher='fc', weight=0.5)),
    dry_run=dict(input_size=(16, 16)))
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(type='ToolsToyImages'),
                        sampler=dict(type='DefaultSampler', shuffle=True),
                        collate_fn=dict(type='pseudo_collate'))
val_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(type='ToolsToyImages', num=4),
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      collate_fn=dict(type='pseudo_collate'))
test_dataloader = val_dataloader
val_evaluator = dict(type='ToolsToyAccuracy')
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=False, max_iters=2, val_interval=2)
log_processor = dict(by_epoch=False)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
param_scheduler = [dict(type='MultiStepLR', milestones=[3], gamma=0.1, by_epoch=False)]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
custom_hooks = [dict(type='mmdiffkd.StepSeedHook')]
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend='nccl'))  # tools switch to gloo without CUDA
log_level = 'INFO'
'''


def write_experiment(directory, teacher_ckpt=None):
    """Write the experiment into ``directory``; returns the config path."""
    directory = str(directory)
    if teacher_ckpt is None:
        teacher_ckpt = toy_teacher_checkpoint(osp.join(directory, 'teacher.pth'))
    with open(osp.join(directory, 'toy_data.py'), 'w') as f:
        f.write(TOY_DATA)
    config = osp.join(directory, 'toy_distill.py')
    with open(config, 'w') as f:
        f.write(textwrap.dedent(CONFIG.format(teacher=str(teacher_ckpt))))
    return config


def load_tool(name):
    """Import ``tools/<name>.py`` as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f'mmdiffkd_tool_{name}',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shrink_scenes_config(cfg, root, work_dir):
    """Point a configs/scenes config at a tiny generated set in ``root``: 2 images a batch, no
    worker processes, no checkpoint or visualization hook."""
    cfg.work_dir = str(work_dir)
    cfg.data_root = root
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = root
    for name in ('val_evaluator', 'test_evaluator'):
        if 'ann_file' in cfg[name]:
            cfg[name].ann_file = root + 'annotations/val.json'
    cfg.default_hooks.checkpoint = None  # None removes a default hook: nothing to save here
    cfg.default_hooks.pop('visualization')
    cfg.default_hooks.logger.interval = 1
    return cfg


def free_port():
    """A TCP port free on this machine now (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def count_hooks(model: nn.Module) -> int:
    """Number of forward (pre-)hooks on ``model`` and its submodules."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
