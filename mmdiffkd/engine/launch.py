"""Adapt a config to the launcher and the machine before the Runner is built.

MMEngine defaults to the NCCL backend and CUDA devices for ``--launcher pytorch``. Without
CUDA (CPU-only CI, laptops) we switch to what works there: the gloo backend, the
``CPUDistributedDataParallel`` wrapper, and a process group initialised here (MMEngine's
``init_dist`` calls ``torch.cuda.set_device``, which fails without a GPU).
"""
import datetime
import os

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def prepare_launch(cfg, launcher='none', cuda_available=None):
    """Set ``cfg.launcher`` and, on a machine without CUDA, make a distributed run use gloo.

    Returns the config (changed in place).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher={launcher!r}; valid: {LAUNCHERS}.')
    cfg.launcher = launcher
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if launcher == 'none' or cuda_available:
        return cfg
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        print_log(f'No CUDA device: using the gloo backend instead of '
                  f'{dist_cfg.get("backend", "nccl")!r}.', logger='current')
    dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if wrapper.get('type', 'MMDistributedDataParallel') in (
            'MMDistributedDataParallel', 'mmengine.MMDistributedDataParallel'):
        wrapper = dict(wrapper, type='mmdiffkd.CPUDistributedDataParallel')
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
        cfg.model_wrapper_cfg = wrapper
    if launcher == 'pytorch' and not torch_dist.is_initialized():
        timeout = dist_cfg.get('timeout')
        kwargs = {} if timeout is None else dict(timeout=datetime.timedelta(seconds=timeout))
        torch_dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                      world_size=int(os.environ['WORLD_SIZE']), **kwargs)
    return cfg


def setup_amp(cfg, cuda_available=None):
    """``--amp``: MMEngine's ``AmpOptimWrapper`` with dynamic loss scale (needs a GPU)."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if not cuda_available:
        raise RuntimeError('--amp needs a CUDA device (MMEngine\'s AmpOptimWrapper runs on '
                           'GPU/NPU/MLU only); drop --amp to train in float32 on the CPU.')
    optim_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_type == 'AmpOptimWrapper':
        print_log('AMP is already enabled in the config.', logger='current')
        return cfg
    if optim_type not in ('OptimWrapper', 'mmengine.OptimWrapper'):
        raise ValueError(f'--amp works with optim_wrapper.type="OptimWrapper"; the config has '
                         f'{optim_type!r}. Set AMP in the config instead.')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    return cfg
