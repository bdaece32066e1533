"""Time one training step of the tiny detection, segmentation and classification models.

Rows (each a separate model, same batch, same optimizer):

- ``student``: the student alone (its data preprocessor, task losses, backward, SGD step);
- ``+ teacher fwd``: the distiller with no loss: student step plus a *full* teacher forward
  (``stop_teacher_early=False``: heads and, for Faster R-CNN, RPN post-processing and RoI head);
- ``+ MSE feat``: the teacher forward cut after the recorded features, plus an MSE on them
  (FitNets, i.e. a 1x1 regressor then MSE, where student and teacher widths differ);
- ``+ DiffKD``: the same records with DiffKD (5 sampling steps) instead of the MSE.

Prints milliseconds (median of ``--steps`` after ``--warmup``) and the ratio to the student row,
and the arithmetic of one step (GFLOP, forward + backward, counted by
``torch.utils.flop_counter.FlopCounterMode``: matrix products and convolutions, not the
elementwise ops) with its ratio to the student's; a last table sets the DiffKD row's time ratio to
the MSE row beside the ratio of their arithmetic. Usage::

    python benchmarks/bench_step.py [--tasks retinanet faster_rcnn pspnet resnet] [--steps 5]
"""
import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, 'tests')]

from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.structures import BaseDataElement  # noqa: E402

# Features each task distils: (module path, index, loss when widths are equal).
FEATURES = {
    'retinanet': ('neck', [0, 1, 2, 3, 4], 'MSE'),
    'faster_rcnn': ('neck', [0, 1, 2, 3, 4], 'MSE'),
    'pspnet': ('backbone.layer4', None, 'FitNets'),
    'resnet': ('backbone.layer4', None, 'FitNets'),
}


def build_variants(task, tmpdir):
    import tiny_models
    from mmdiffkd.models.distillers import Distiller
    from mmdiffkd.utils.builder import build_model_in_scope, infer_scope, load_model_spec
    cfg_path, make_data, _, _ = tiny_models.TASKS[task]
    cfg = Config.fromfile(os.path.join(tiny_models.CONFIG_DIR, cfg_path))
    ckpt = tiny_models.teacher_checkpoint(cfg, os.path.join(tmpdir, f'{task}_teacher.pth'))
    teacher_spec = dict(config=cfg.model.teacher.config, checkpoint=ckpt)
    path, index, feat_loss = FEATURES[task]
    decl = dict(student=path, index=index)
    variants = {}
    torch.manual_seed(0)
    model_cfg, scope, _ = load_model_spec(cfg.model.student, 'student')
    variants['student'] = build_model_in_scope(model_cfg, infer_scope(model_cfg, scope,
                                                                      'student'))
    common = dict(student=cfg.model.student, teacher=teacher_spec, dry_run=cfg.model.dry_run)
    variants['+ teacher fwd'] = Distiller(**common, distill_losses={}, stop_teacher_early=False)
    variants['+ MSE feat'] = Distiller(**common, distill_losses=dict(
        feat=dict(decl, loss=dict(type=feat_loss))))
    variants['+ DiffKD'] = Distiller(**common, distill_losses=dict(
        feat=dict(decl, loss=dict(type='DiffKD', inference_steps=5))))
    data = make_data(n=2)
    batch = dict(inputs=[data[i]['inputs'] for i in range(2)],
                 data_samples=[data[i]['data_samples'] for i in range(2)])
    where = path + (f' levels {index[0]}-{index[-1]}' if index else '')
    return variants, batch, f'{feat_loss} / DiffKD on {where}'


def make_step(model, batch):
    model.train()
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))

    def step():
        data = {k: [x.clone() if isinstance(x, (torch.Tensor, BaseDataElement)) else x
                    for x in v] for k, v in batch.items()}
        start = time.perf_counter()
        model.train_step(data, optim)
        return time.perf_counter() - start
    return step


def count_gflop(step):
    """FLOPs of one training step (matmuls and convolutions, forward and backward), in GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def time_variants(variants, batch, warmup, steps):
    """Round-robin over the variants, one step each per round, so that load changes on a shared
    machine hit every variant alike; median per variant, in ms."""
    steps_of = {name: make_step(model, batch) for name, model in variants.items()}
    times = {name: [] for name in variants}
    for i in range(warmup + steps):
        for name, step in steps_of.items():
            t = step()
            if i >= warmup:
                times[name].append(t)
    gflop = {name: count_gflop(step) for name, step in steps_of.items()}  # after the timing
    return {name: statistics.median(t) * 1000 for name, t in times.items()}, gflop


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tasks', nargs='+', default=['retinanet', 'faster_rcnn', 'pspnet',
                                                         'resnet'])
    parser.add_argument('--steps', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import tempfile
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for task in args.tasks:
            variants, batch, feat = build_variants(task, tmpdir)
            ms_of, gflop = time_variants(variants, batch, args.warmup, args.steps)
            base, base_flop = ms_of['student'], gflop['student']
            for name, ms in ms_of.items():
                rows.append((task, name, ms, ms / base, gflop[name], gflop[name] / base_flop,
                             feat))
                print(f'{task:12s} {name:15s} {ms:9.1f} ms  x{ms / base:.2f}  '
                      f'{gflop[name]:.2f} GFLOP  x{gflop[name] / base_flop:.2f}', flush=True)
    print(f'\nOne training step, batch 2, median of {args.steps} after {args.warmup} warm-up '
          f'(variants interleaved), torch {torch.__version__}, {torch.get_num_threads()} '
          'threads\n')
    print('| model | step | ms | ratio to student | GFLOP | GFLOP ratio to student | '
          'distilled features |')
    print('|---|---|---:|---:|---:|---:|---|')
    for task, name, ms, ratio, flop, flop_ratio, feat in rows:
        print(f'| {task} | {name} | {ms:.1f} | {ratio:.2f} | {flop:.2f} | {flop_ratio:.2f} | '
              f'{feat} |')
    print('\n| model | DiffKD / MSE time | DiffKD / MSE GFLOP |')
    print('|---|---:|---:|')
    by = {(task, name): (ms, flop) for task, name, ms, _, flop, _, _ in rows}
    for task in args.tasks:
        (t_d, f_d), (t_m, f_m) = by[(task, '+ DiffKD')], by[(task, '+ MSE feat')]
        print(f'| {task} | {t_d / t_m:.2f} | {f_d / f_m:.2f} |')


if __name__ == '__main__':
    main()
