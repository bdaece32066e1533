"""Soak: many DiffKD distillation steps of tiny models on the CPU, printing resident memory.

    python benchmarks/soak_diffkd.py [--iters 1000] [--every 50] [--warmup 200] [--threads 1]
                                     [--ckpt-every 250] [--batch-size 8] [--leak-kb 0]

Trains ``tests/tiny_models.py``'s ``ToyClassifier`` (width 8) from a frozen width-16 teacher
with DiffKD (on ``stage2``) + MSE (on the logits) through MMEngine's Runner, with what
``tools/train.py`` turns on: the atomic checkpoint hook (a checkpoint every ``--ckpt-every``
iterations), the non-finite loss guard, per-step seeding and logging every 50 iterations.
Every ``--every`` iterations the process's resident set size (``/proc/self/statm``) is
recorded; the curve is printed with the growth after ``--warmup`` iterations and its slope
(least squares, MiB per 1000 iterations). A leak of a few KiB per step shows as a slope; a
flat curve after the warm-up means nothing accumulates per step (graphs kept alive by a
recorder, log history, checkpoint buffers ...). Run it as its own process: in a process that
already freed much memory, new allocations reuse resident pages and a leak hides.
``tests/benchmarks/test_soak.py`` runs a shorter version with a tolerance, and a control that
leaks on purpose (``--leak-kb``), each in a fresh process.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, 'tests')]
MIB = 1 << 20


def rss_bytes():
    """Resident set size of this process now (Linux)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def make_rss_hook(every, leak_kb=0):
    from mmengine.hooks import Hook

    class RSSHook(Hook):
        """Records ``(iteration, RSS)`` every ``every`` iterations; ``leak_kb`` > 0 keeps that
        much per step alive on purpose (the control of the soak test)."""

        priority = 'LOWEST'

        def __init__(self):
            self.curve, self.kept = [], []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if leak_kb:
                self.kept.append(b'\x01' * (leak_kb * 1024))  # written: resident
            step = runner.iter + 1
            if step % every == 0 or step == 1:
                self.curve.append((step, rss_bytes()))

    return RSSHook()


def build_runner(work_dir, iters, ckpt_every, batch_size=8, seed=0):
    import torch
    from mmengine.registry import MODELS as ROOT_MODELS
    from mmengine.runner import Runner
    from tiny_models import ToyDataset, save_weights, toy_model

    import mmdiffkd.engine  # noqa: F401
    import mmdiffkd.models  # noqa: F401
    torch.manual_seed(1)
    teacher = save_weights(ROOT_MODELS.build(toy_model(16)), os.path.join(work_dir, 't.pth'))
    return Runner(
        model=dict(type='mmdiffkd.Distiller', student=toy_model(8),
                   teacher=dict(config=toy_model(16), checkpoint=teacher),
                   distill_losses=dict(
                       feat=dict(loss=dict(type='DiffKD', inference_steps=5), student='stage2',
                                 teacher='stage2'),
                       logits=dict(loss=dict(type='MSE'), student='fc', teacher='fc',
                                   weight=0.5)),
                   dry_run=dict(input_size=(16, 16))),
        work_dir=work_dir,
        train_dataloader=dict(dataset=ToyDataset(n=64, seed=seed), batch_size=batch_size,
                              num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(type='mmdiffkd.FiniteLossOptimWrapper',
                           optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-2)),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        default_hooks=dict(checkpoint=dict(type='mmdiffkd.AtomicCheckpointHook',
                                           interval=ckpt_every, by_epoch=False,
                                           max_keep_ckpts=1),
                           logger=dict(type='LoggerHook', interval=50)),
        custom_hooks=[dict(type='mmdiffkd.StepSeedHook'),
                      dict(type='mmdiffkd.NonFiniteLossHook')],
        log_processor=dict(by_epoch=False), randomness=dict(seed=seed),
        default_scope='mmdiffkd', log_level='WARNING')


def soak(iters=1000, every=50, warmup=200, ckpt_every=250, batch_size=8, leak_kb=0,
         work_dir=None):
    """Train ``iters`` steps; returns ``dict(curve=[(iter, rss_bytes)], growth_mib,
    slope_mib_per_kiter, seconds)`` (growth and slope over the samples after ``warmup``)."""
    own = work_dir is None
    work_dir = tempfile.mkdtemp(prefix='soak_diffkd_') if own else work_dir
    try:
        runner = build_runner(work_dir, iters, ckpt_every, batch_size)
        hook = make_rss_hook(every, leak_kb)
        runner.register_hook(hook)
        start = time.time()
        runner.train()
        seconds = time.time() - start
    finally:
        if own:
            shutil.rmtree(work_dir, ignore_errors=True)
    after = [(i, r) for i, r in hook.curve if i >= warmup]
    growth = (after[-1][1] - after[0][1]) / MIB
    n = len(after)
    mean_i = sum(i for i, _ in after) / n
    mean_r = sum(r for _, r in after) / n
    var = sum((i - mean_i)**2 for i, _ in after)
    slope = sum((i - mean_i) * (r - mean_r) for i, r in after) / var / MIB * 1000 if var else 0.0
    return dict(curve=hook.curve, growth_mib=growth, slope_mib_per_kiter=slope,
                seconds=seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=1000)
    parser.add_argument('--every', type=int, default=50, help='record RSS every N iterations')
    parser.add_argument('--warmup', type=int, default=200,
                        help='growth and slope are measured after this iteration')
    parser.add_argument('--ckpt-every', type=int, default=250)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--leak-kb', type=int, default=0,
                        help='keep this many KiB alive per step (a control: must show growth)')
    parser.add_argument('--json', help='also write the result to this file')
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    result = soak(args.iters, args.every, args.warmup, args.ckpt_every, args.batch_size,
                  args.leak_kb)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f)
    print(f'{"iter":>6} {"RSS MiB":>9}')
    for step, rss in result['curve']:
        print(f'{step:>6} {rss / MIB:>9.1f}')
    print(f'{args.iters} iterations in {result["seconds"]:.0f} s; after iteration '
          f'{args.warmup}: growth {result["growth_mib"]:+.1f} MiB, slope '
          f'{result["slope_mib_per_kiter"]:+.2f} MiB per 1000 iterations')
    return result


if __name__ == '__main__':
    main()
