"""Train a distiller, or any plain mmdet / mmseg / mmpretrain config, with MMEngine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--on-nonfinite stop|skip]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
    bash tools/dist_train.sh CONFIG NUM_PROCESSES [same options]

``--resume`` without a path resumes from the checkpoint the work dir's ``last_checkpoint``
names, after checking it is complete. Checkpoints are written atomically
(``mmdiffkd.AtomicCheckpointHook``) and a NaN / inf loss stops training, or skips the step,
naming the loss (``mmdiffkd.NonFiniteLossHook``); see docs/tools.md, "What survives a fault".
Every checkpoint load uses ``torch.load(weights_only=True)`` with the allow-list MMEngine's own
checkpoints need (``mmdiffkd.install_safe_loaders``); mmdiffkd's models, losses and hooks
register when the config names them.
"""
import argparse
import os.path as osp
import sys

from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# A checkout's tools use its own package, installed or not (dist_train.sh sets PYTHONPATH alike).
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdiffkd import install_safe_loaders  # noqa: E402
from mmdiffkd.engine.launch import (add_common_args, load_config,  # noqa: E402
                                    parse_common_args, prepare_launch, setup_amp,
                                    use_safe_training)
from mmdiffkd.engine.nonfinite import ACTIONS  # noqa: E402
from mmdiffkd.utils.integrity import (check_checkpoint, check_checkpoint_path,  # noqa: E402
                                      is_remote, resume_checkpoint_in)


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
    parser.add_argument('--on-nonfinite', choices=ACTIONS, default=None,
                        help='when a loss turns NaN / inf: stop (default) or skip the step; '
                             'either way the message names the loss, the iteration and the '
                             'last checkpoint')
    add_common_args(parser)
    return parse_common_args(parser, argv)


def build_cfg(args):
    """The Runner config; every check that can fail runs here, before anything is written."""
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    if args.amp:
        setup_amp(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        check_checkpoint_path(args.resume, '--resume', hint='(give a .pth path, or --resume '
                              'alone for the latest in the work dir).')
        cfg.resume = True
        cfg.load_from = args.resume
    if cfg.get('resume') and not cfg.get('load_from'):  # --resume alone, or resume=True
        # the checkpoint last_checkpoint names, checked complete; None: a first run
        cfg.load_from = resume_checkpoint_in(cfg.work_dir)
        if cfg.load_from is not None:
            print_log(f'Resuming from {cfg.load_from} (named by the work dir\'s '
                      'last_checkpoint).', logger='current')
    if cfg.get('load_from'):
        what = '--resume' if cfg.get('resume') else 'load_from'
        check_checkpoint_path(cfg.load_from, what)
        if not is_remote(cfg.load_from):
            check_checkpoint(cfg.load_from, what=what)
    use_safe_training(cfg, args.on_nonfinite)
    prepare_launch(cfg, args.launcher)
    return cfg


def main(argv=None):
    install_safe_loaders()
    args = parse_args(argv)
    cfg = build_cfg(args)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
