"""Faults on demand for the fault-tolerance tests: a distillation loss that turns NaN / inf at
chosen iterations, a hook that makes checkpoints big enough to be killed while being written,
and a DiffKD experiment config for tools/train.py.

Imported by the tests and, through ``custom_imports``, by the configs they run in subprocesses.
"""
import os.path as osp
import textwrap

import torch
import torch.nn.functional as F
from helpers import write_experiment
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.registry import HOOKS as ROOT_HOOKS

from mmdiffkd.models.losses.base import DistillLoss
from mmdiffkd.registry import MODELS


@MODELS.register_module(force=True)
class FlakyMSE(DistillLoss):
    """MSE whose value is ``bad`` (NaN by default) at the 1-based iterations ``bad_iters`` and,
    with ``ranks``, only on those ranks."""

    def __init__(self, bad_iters=(), bad=float('nan'), ranks=None):
        super().__init__()
        self.bad_iters, self.bad, self.ranks = set(bad_iters), bad, ranks

    def forward(self, student, teacher, data_samples=None):
        from mmengine.dist import get_rank
        loss = F.mse_loss(student.float(), teacher.float())
        step = MessageHub.get_current_instance().get_info('iter', -1) + 1
        if step in self.bad_iters and (self.ranks is None or get_rank() in self.ranks):
            return loss * self.bad  # keeps the graph: NaN / inf flows into backward too
        return loss


@ROOT_HOOKS.register_module(force=True)
class PadCheckpointHook(Hook):
    """Adds ``mb`` MiB of zeros under a top-level key of every checkpoint (ignored on resume),
    so that writing it takes long enough to be interrupted."""

    def __init__(self, mb=32):
        self.mb = mb

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['padding'] = torch.zeros(self.mb * (1 << 18))


DIFFKD_CONFIG = '''
_base_ = './toy_distill.py'
custom_imports = dict(imports=['tiny_models', 'toy_data', 'fault_helpers'],
                      allow_failed_imports=False)
model = dict(distill_losses=dict(
    _delete_=True,
    feat=dict(loss=dict(type='DiffKD', inference_steps=2), student='stage2', teacher='stage2'),
    logits=dict(loss=dict(type='MSE'), student='fc', teacher='fc', weight=0.5)))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.01, weight_decay=0.01))
train_cfg = dict(by_epoch=False, max_iters={max_iters}, val_interval=1000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                                     max_keep_ckpts=2),
                     logger=dict(type='LoggerHook', interval=1))
custom_hooks = [dict(type='mmdiffkd.StepSeedHook'), dict(type='PadCheckpointHook', mb={pad_mb})]
'''


def write_diffkd_experiment(directory, max_iters=8, pad_mb=32):
    """``helpers.write_experiment``'s toy experiment with DiffKD + MSE, AdamW, a checkpoint
    every iteration (two kept) padded to ``pad_mb`` MiB; returns the config path."""
    write_experiment(directory)
    path = osp.join(str(directory), 'toy_diffkd.py')
    with open(path, 'w') as f:
        f.write(textwrap.dedent(DIFFKD_CONFIG.format(max_iters=max_iters, pad_mb=pad_mb)))
    return path
