"""Train a distiller, or any plain mmdet / mmseg / mmpretrain config, with MMEngine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
    bash tools/dist_train.sh CONFIG NUM_PROCESSES [same options]

``--resume`` without a path resumes from the latest checkpoint in the work dir.
Importing mmdiffkd registers its models, losses and hooks, and makes every checkpoint load use
``torch.load(weights_only=True)`` with the allow-list MMEngine's own checkpoints need.
"""
import argparse
import os.path as osp
import sys

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a checkout, uninstalled

import mmdiffkd  # noqa: E402,F401  (version check)
import mmdiffkd.engine  # noqa: E402  (safe checkpoint loading, hooks, CPU DDP wrapper)
import mmdiffkd.models  # noqa: E402,F401  (Distiller and losses)
from mmdiffkd.engine.launch import (add_common_args, load_config,  # noqa: E402
                                    parse_common_args, prepare_launch, setup_amp)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model (distiller or plain) with '
                                                 'MMEngine.')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint; without a path, from the latest '
                             'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (AmpOptimWrapper; needs a GPU)')
    add_common_args(parser)
    return parse_common_args(parser, argv)


def build_cfg(args):
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    if args.amp:
        setup_amp(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if '://' not in args.resume and not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume {args.resume!r}: no such checkpoint file (give '
                                    'a .pth path, or --resume alone for the latest in the '
                                    'work dir).')
        cfg.resume = True
        cfg.load_from = args.resume
    prepare_launch(cfg, args.launcher)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
