"""Adapt a config to the launcher and the machine before the Runner is built.

MMEngine defaults to the NCCL backend and CUDA devices for ``--launcher pytorch``. Without
CUDA (CPU-only CI, laptops) we switch to what works there: the gloo backend, the
``CPUDistributedDataParallel`` wrapper, and a process group initialised here (MMEngine's
``init_dist`` calls ``torch.cuda.set_device``, which fails without a GPU).
"""
import datetime
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def add_common_args(parser):
    """``--cfg-options``, ``--launcher`` and the local rank torch's launchers pass."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. '
                             'train_cfg.max_iters=100 "model.distill_losses.fpn.weight=2.0")')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_common_args(parser, argv=None):
    """Parse, exporting the local rank as ``LOCAL_RANK`` when the launcher did not."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(path, cfg_options=None, work_dir=None):
    """The config at ``path`` with overrides; work dir defaults to ./work_dirs/<config name>."""
    cfg = Config.fromfile(path)
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


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
