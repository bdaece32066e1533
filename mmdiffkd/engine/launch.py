"""Adapt a config to the launcher and the machine before the Runner is built, and check the
tools' input (config path, ``--cfg-options`` keys, work dir) before anything is written.

MMEngine defaults to the NCCL backend and CUDA devices for ``--launcher pytorch``. Without
CUDA (CPU-only CI, laptops) we switch to what works there: the gloo backend, the
``CPUDistributedDataParallel`` wrapper, and a process group initialised here (MMEngine's
``init_dist`` calls ``torch.cuda.set_device``, which fails without a GPU).
"""
import datetime
import difflib
import inspect
import logging
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from .nonfinite import ACTIONS, finite_wrapper_type

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


class ConfigKeyError(KeyError):
    """A ``--cfg-options`` key that the config does not have (printed without KeyError's
    quotes)."""

    def __str__(self):
        return str(self.args[0])


def check_config_path(path):
    """A clear error for a config path that does not exist, proposing close names."""
    if osp.isfile(path):
        return
    directory = osp.dirname(path) or '.'
    hint = ''
    if osp.isdir(directory):
        close = difflib.get_close_matches(osp.basename(path), os.listdir(directory), n=3)
        if close:
            hint = ' Did you mean ' + ' or '.join(repr(osp.join(directory, c)) for c in close)
            hint += '?'
    elif path:
        hint = f' (its directory {directory!r} does not exist either)'
    kind = 'is a directory, not a config file' if osp.isdir(path) else 'does not exist'
    raise FileNotFoundError(f'Config file {path!r} {kind}.{hint} Nothing was written.')


def check_cfg_options(cfg, cfg_options, path='the config'):
    """Every ``--cfg-options`` key must exist in the config: MMEngine would add a misspelt key
    silently (``train_cfg.max_iter=10`` next to ``max_iters``) and train with the old value.

    A key written with a leading ``+`` may add a new last part under an existing one
    (``+model.init_distill_losses=FILE``, ``+train_dataloader.dataset.indices=100``), as
    Hydra's ``+`` does; a missing top-level key that the Runner reads (``randomness``,
    ``load_from`` ...) may be added without it. Keys into lists take indices
    (``model.backbone.out_indices.0=1``). Returns the options with the ``+`` marks removed.
    """
    runner_keys = set(inspect.signature(Runner.__init__).parameters) - {'self'}
    plain = {}
    for key, value in (cfg_options or {}).items():
        add = key.startswith('+')
        parts = key.lstrip('+').split('.')
        plain['.'.join(parts)] = value
        node, prefix = cfg._cfg_dict, []
        for part in parts:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                break
            prefix.append(part)
        else:
            continue
        if not prefix and parts[0] in runner_keys:
            continue
        if add and len(prefix) == len(parts) - 1 and isinstance(node, dict):
            continue  # an explicit new key under an existing dict
        where = '.'.join(prefix) or 'the top level'
        known = list(node) if isinstance(node, dict) else (
            [str(i) for i in range(len(node))] if isinstance(node, (list, tuple)) else [])
        missing = parts[len(prefix)]
        close = difflib.get_close_matches(missing, known, n=2, cutoff=0.75)
        hint = (' Did you mean ' + ' or '.join(repr('.'.join(prefix + [c])) for c in close)
                + '?') if close else ''
        if not known:
            listing = f' {where!r} holds a {type(node).__name__}, not a dict.'
        else:
            shown = ', '.join(known[:20]) + (', ...' if len(known) > 20 else '')
            listing = f' Keys under {where}: {shown}.'
        if len(prefix) == len(parts) - 1 and isinstance(node, dict):
            fix = (f' To add a key the config does not have, write it with a leading +: '
                   f'+{".".join(parts)}=...')
        else:
            fix = (' Only the last part of a key can be new (written with a leading +); add '
                   'the rest to the config.')
        raise ConfigKeyError(f'--cfg-options {key}: {path} has no {missing!r} under {where}.'
                             f'{hint}{listing}{fix} Nothing was written.')
    return plain


def check_work_dir(work_dir):
    """A work dir (or one of its parents) that is an existing file: a clear error now, not a
    ``FileExistsError`` from deep in the Runner after other files were written."""
    path = osp.abspath(work_dir)
    while not osp.exists(path) and osp.dirname(path) != path:
        path = osp.dirname(path)
    if not osp.isdir(path):
        what = ('is a file' if path == osp.abspath(work_dir) else
                f'is inside {path!r}, which is a file')
        raise NotADirectoryError(f'Work dir {work_dir!r} {what}, not a directory. Pass another '
                                 '--work-dir (or move the file away). Nothing was written.')


def load_config(path, cfg_options=None, work_dir=None):
    """The config at ``path`` with overrides; work dir defaults to ./work_dirs/<config name>.

    Checks before anything is written: the config exists, every ``cfg_options`` key exists in
    it, the work dir is not a file.
    """
    check_config_path(path)
    cfg = Config.fromfile(path)
    if cfg_options is not None:
        cfg.merge_from_dict(check_cfg_options(cfg, cfg_options, path=path))
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    check_work_dir(cfg.work_dir)
    return cfg


def _type_name(type_):
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', '')
    return name.split('.')[-1]


def use_safe_training(cfg, on_nonfinite=None):
    """Crash-safe checkpoints and the non-finite loss guard, with no change to the config file.

    - ``default_hooks.checkpoint``: MMEngine's ``CheckpointHook`` (also the Runner's default
      when the config has none) becomes ``mmdiffkd.AtomicCheckpointHook`` (same arguments).
    - ``optim_wrapper.type``: ``OptimWrapper`` / ``AmpOptimWrapper`` become
      ``mmdiffkd.FiniteLossOptimWrapper`` / ``FiniteLossAmpOptimWrapper``.
    - ``custom_hooks`` gets ``mmdiffkd.NonFiniteLossHook`` (``action`` from ``on_nonfinite``,
      default ``'stop'``) unless it has one (then ``on_nonfinite``, if given, sets its action).

    Returns the config (changed in place).
    """
    if on_nonfinite is not None and on_nonfinite not in ACTIONS:
        raise ValueError(f'on_nonfinite={on_nonfinite!r}; valid: {ACTIONS}.')
    if cfg.get('default_hooks') is None:
        cfg.default_hooks = {}
    hooks = cfg.default_hooks
    if 'checkpoint' not in hooks:
        hooks['checkpoint'] = dict(type='mmdiffkd.AtomicCheckpointHook', interval=1)
    elif hooks['checkpoint'] is not None:
        name = _type_name(hooks['checkpoint'].get('type'))
        if name == 'CheckpointHook':
            hooks['checkpoint']['type'] = 'mmdiffkd.AtomicCheckpointHook'
        elif name != 'AtomicCheckpointHook':
            print_log(f'default_hooks.checkpoint is {hooks["checkpoint"].get("type")!r}, not '
                      "MMEngine's CheckpointHook: its checkpoints are written as it writes them "
                      '(not necessarily atomically).', logger='current',
                      level=logging.WARNING)

    guarded = False
    if cfg.get('optim_wrapper') is not None:
        guarded_type = finite_wrapper_type(cfg.optim_wrapper.get('type', 'OptimWrapper'))
        if guarded_type is not None:
            cfg.optim_wrapper['type'] = guarded_type
            guarded = True
    custom = list(cfg.get('custom_hooks') or [])
    mine = [h for h in custom if _type_name(h.get('type')) == 'NonFiniteLossHook']
    if mine:
        if on_nonfinite is not None:
            for hook in mine:
                hook['action'] = on_nonfinite
    else:
        custom.append(dict(type='mmdiffkd.NonFiniteLossHook',
                           action=on_nonfinite or 'stop'))
    cfg.custom_hooks = custom
    actions = {h.get('action', 'stop') for h in custom
               if _type_name(h.get('type')) == 'NonFiniteLossHook'}
    if 'skip' in actions and not guarded:
        raise ValueError(
            f'--on-nonfinite skip needs optim_wrapper.type OptimWrapper or AmpOptimWrapper '
            f'(replaced by their mmdiffkd.FiniteLoss* twins, which skip the update); the '
            f'config has {cfg.get("optim_wrapper", {}).get("type")!r}. Use --on-nonfinite '
            'stop. Nothing was written.')
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
