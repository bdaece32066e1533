"""Pre-train the DiffKD modules of a distillation config on the teacher's features.

    python tools/pretrain_diffkd.py CONFIG [--iters 500] [--lr 1e-3] [--out FILE]
                                           [--cfg-options k=v ...]
    python tools/train.py CONFIG --cfg-options +model.init_distill_losses=FILE

Runs the config's training data through the frozen teacher and trains each DiffKD module's
diffusion model (and autoencoder) on those features alone, then writes the distillation modules'
weights (default ``<work_dir>/diffkd_pretrained.pth``) for ``model.init_distill_losses``. The
student is not run, so this costs a teacher forward per batch. An addition to the paper: see
``docs/diffkd.md`` for what it changes and its measured effect.
"""
import argparse
import os.path as osp
import sys

from mmengine.runner import Runner

# A checkout's tools use its own package, installed or not (dist_train.sh sets PYTHONPATH alike).
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdiffkd import install_safe_loaders  # noqa: E402
from mmdiffkd.engine.diffkd_pretrain import (pretrain_diffkd,  # noqa: E402
                                             save_distill_losses)
from mmdiffkd.engine.launch import add_common_args, load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a distillation config with DiffKD declarations')
    parser.add_argument('--iters', type=int, default=500, help='training iterations')
    parser.add_argument('--lr', type=float, default=1e-3, help='AdamW learning rate')
    parser.add_argument('--out', help='output file (default <work_dir>/diffkd_pretrained.pth)')
    parser.add_argument('--work-dir', help='work dir (logs; default output folder)')
    parser.add_argument('--log-interval', type=int, default=50)
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.launcher != 'none':
        parser.error('pre-training runs in one process (it is cheap); drop --launcher.')
    if args.iters < 1:
        parser.error(f'--iters={args.iters}; valid: an integer >= 1.')
    if not args.lr > 0:
        parser.error(f'--lr={args.lr}; valid: a number > 0.')
    if not osp.isfile(args.config):
        parser.error(f'config {args.config!r} does not exist.')
    return args


def main(argv=None):
    install_safe_loaders()
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    if cfg.model.get('type') not in ('mmdiffkd.Distiller', 'Distiller'):
        raise SystemExit(f'{args.config}: model.type is {cfg.model.get("type")!r}; pre-training '
                         'needs a distillation config (model.type="mmdiffkd.Distiller").')
    cfg.model.pop('init_distill_losses', None)  # never start from an older pre-training
    runner = Runner.from_cfg(cfg)
    loader = runner.build_dataloader(cfg.train_dataloader, seed=runner.seed)
    rows = pretrain_diffkd(runner.model, loader, args.iters, args.lr, args.log_interval)
    out = args.out or osp.join(cfg.work_dir, 'diffkd_pretrained.pth')
    save_distill_losses(runner.model, out, dict(config=osp.basename(args.config),
                                                iters=args.iters, lr=args.lr, log=rows))
    print(f'DiffKD pre-training written to {out}; distil from it with\n'
          f'  python tools/train.py {args.config} --cfg-options '
          f'+model.init_distill_losses={out}')


if __name__ == '__main__':
    main()
