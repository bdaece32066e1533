"""The main demo: distil a ResNet-18 (width 16) teacher into a width-4 student on Fashion-MNIST.

Trains the teacher (or reuses its cached checkpoint), then the student alone, with KD, with DIST
and with DiffKD, all through the configs in ``configs/fashion_mnist/`` and MMEngine's Runner,
on the real data (Debian's ``dataset-fashion-mnist``). Prints a table of top-1 accuracies and
the share of the teacher-student gap each method closes, and writes a plot of the students'
validation accuracy over training.

    python tools/demo.py                       # the defaults fit ~20 min on 2 CPU cores
    python tools/demo.py --train-size 60000 --student-epochs 30 --teacher-epochs 30  # full
    python tools/demo.py --methods student dkd    # other methods (benchmarks/: all, 3 seeds)

Every setting that shrinks the run (training subset, epochs) is printed with the table.
"""
import argparse
import copy
import hashlib
import json
import math
import os
import os.path as osp
import sys
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, REPO)
from mmdiffkd.results import gap_closed  # noqa: E402
CONFIG_DIR = osp.join(REPO, 'configs', 'fashion_mnist')
TEACHER = 'resnet18-w16_1xb128_fashion-mnist.py'
# (row name, config): the student alone, then each distillation config. The demo trains the first
# four (DEMO_METHODS); `benchmarks/bench_fashion_mnist.py` compares them all.
STUDENTS = {
    'student': 'resnet18-w4_1xb128_fashion-mnist.py',
    'kd': 'kd_logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'dist': 'dist_logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'dkd': 'dkd_logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'fitnets': 'fitnets_feat_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'cwd': 'cwd_feat_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'vkd': 'vkd_feat_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'rtk': 'rtk_feat_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'aekt': 'aekt_logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'diffkd': 'diffkd_feat-logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'diffkd-paper': 'diffkd-paper_feat-logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'diffkd-kd': 'diffkd-kd_feat-logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
    'diffkd-dist': 'diffkd-dist_feat-logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py',
}
DEMO_METHODS = ['student', 'kd', 'dist', 'diffkd']
LABELS = {'teacher': 'Teacher ResNet-18 w16', 'student': 'Student ResNet-18 w4 alone',
          'kd': 'Student + KD (logits)', 'dist': 'Student + DIST (logits)',
          'dkd': 'Student + DKD (logits)', 'fitnets': 'Student + FitNets (feat)',
          'cwd': 'Student + CWD (feat)', 'vkd': 'Student + VkD (pooled feat)',
          'rtk': 'Student + RTK (feat)', 'aekt': 'Student + AEKT (logits)',
          'diffkd': 'Student + DiffKD (feat + logits)',
          'diffkd-paper': 'Student + DiffKD, paper recipe',
          'diffkd-kd': 'Student + DiffKD + KD',
          'diffkd-dist': 'Student + DiffKD + DIST'}
# Every config's schedule is written for the full training set (60000 images).
FULL_TRAIN_SIZE = 60000

# Defaults chosen from measured throughput to fit ~20 min on 2 CPU cores (docs/classification.md).
DEFAULTS = dict(train_size=10000, teacher_epochs=8, student_epochs=8, val_size=None, seed=0,
                num_workers=1, threads=1, split='test')
# Tuning scores students on the hold-out split (the last 10000 training images): every run then
# trains on a subset of the first 50000 (mmdiffkd.FashionMNIST, split='holdout').
HOLDOUT_SIZE = 10000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo_fashion_mnist'))
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'fashion_mnist'))
    parser.add_argument('--train-size', type=int, default=DEFAULTS['train_size'],
                        help='train on the first N of the 60000 training images')
    parser.add_argument('--val-size', type=int, default=DEFAULTS['val_size'],
                        help='validate on the first N of the 10000 images of --split '
                        '(default: all)')
    parser.add_argument('--split', choices=('test', 'holdout'), default=DEFAULTS['split'],
                        help='what the students are scored on: the test images (default), or '
                        'the hold-out split (the last 10000 training images) when tuning')
    parser.add_argument('--teacher-epochs', type=int, default=DEFAULTS['teacher_epochs'])
    parser.add_argument('--student-epochs', type=int, default=DEFAULTS['student_epochs'])
    parser.add_argument('--seed', type=int, default=DEFAULTS['seed'], help='students\' seed')
    parser.add_argument('--teacher-seed', type=int, default=DEFAULTS['seed'])
    parser.add_argument('--methods', nargs='+', default=list(DEMO_METHODS),
                        choices=list(STUDENTS), help='which students to train')
    parser.add_argument('--num-workers', type=int, default=DEFAULTS['num_workers'])
    parser.add_argument('--threads', type=int, default=DEFAULTS['threads'],
                        help='torch threads for training. 1 (the default) leaves a core to the '
                        'data worker, and on a machine busy with other work it is several times '
                        'faster than 2 (threads spin-wait for each other); 0 = torch\'s default')
    parser.add_argument('--retrain', action='store_true',
                        help='ignore cached results (teacher checkpoint and student runs)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f'--threads={args.threads}; valid: an integer >= 0 (0: torch\'s default).')
    for name in ('train_size', 'teacher_epochs', 'student_epochs', 'num_workers'):
        value = getattr(args, name)
        low = 0 if name == 'num_workers' else 1
        if value < low:
            parser.error(f'--{name.replace("_", "-")}={value}; valid: an integer >= {low}.')
    if not 1 <= args.train_size <= 60000:
        parser.error(f'--train-size={args.train_size}; valid: 1..60000.')
    if args.val_size is not None and not 1 <= args.val_size <= 10000:
        parser.error(f'--val-size={args.val_size}; valid: 1..10000.')
    if args.split == 'holdout' and args.train_size > FULL_TRAIN_SIZE - HOLDOUT_SIZE:
        parser.error(f'--split holdout with --train-size={args.train_size}: the hold-out images '
                     f'are the last {HOLDOUT_SIZE} training images; valid: --train-size <= '
                     f'{FULL_TRAIN_SIZE - HOLDOUT_SIZE}.')
    return args


# ---- configs ----------------------------------------------------------------------------------

_PARSED = {}


def read_config(name):
    """A fresh copy of one of the configs as written (each file is parsed once per process)."""
    if name not in _PARSED:
        from mmengine.config import Config
        _PARSED[name] = Config.fromfile(osp.join(CONFIG_DIR, name))
    return copy.deepcopy(_PARSED[name])


def load_config(name, *, work_dir, data_root, train_size, epochs, seed, val_size=None,
                num_workers=1, teacher_checkpoint=None, split='test', options=None):
    """One of the demo's configs with the demo's overrides (subset, epochs, paths, quiet logs,
    logged diagnostics, the final checkpoint kept) and ``options``, a dict of dotted config
    keys (a tuning variant: ``{'model.distill_losses.logits.loss.tau': 2.0}``)."""
    cfg = read_config(name)
    scale_warmups(cfg, train_size, epochs)  # the config's warm-ups; options give run units
    if options:
        cfg.merge_from_dict(copy.deepcopy(options))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.dataset.data_root = data_root
        loader.num_workers = num_workers
        loader.persistent_workers = num_workers > 0
    cfg.train_dataloader.dataset.indices = train_size
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.split = split
        if val_size is not None:
            loader.dataset.indices = val_size
    cfg.train_cfg.max_epochs = epochs
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    # quiet console; every 10 iterations the losses and diagnostics go to scalars.json
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=True,
                                        max_keep_ckpts=1)
    if teacher_checkpoint is not None:
        cfg.model.teacher.checkpoint = teacher_checkpoint
    return cfg


def iterations(train_size, epochs, batch_size):
    """Training iterations of a one-process run (the last, partial batch is kept)."""
    return epochs * math.ceil(train_size / batch_size)


WARMUP_KEYS = ('warmup_iters', 'distill_warmup_iters')  # DKD / AEKT, DiffKD


def scale_warmups(cfg, train_size, epochs):
    """Scale each distillation loss's warm-up (``warmup_iters``, DiffKD's
    ``distill_warmup_iters``) to the run's length, in place.

    A config's warm-up is sized for its own schedule on the full training set (DKD's 1172
    iterations: 1/12 of 30 epochs x 469 iterations, the authors' 20 of 240 epochs; DiffKD's 3562:
    a quarter); a shorter run keeps the same fraction (8 epochs x 79 iterations on 10000 images:
    53 and 160). Returns ``{loss name: (config's, scaled)}`` for the losses that have one.
    """
    batch = cfg.train_dataloader.batch_size
    full = cfg.train_dataloader.dataset.get('indices', None) or FULL_TRAIN_SIZE
    planned = iterations(full, cfg.train_cfg.max_epochs, batch)
    run = iterations(train_size, epochs, batch)
    scaled = {}
    for name, spec in cfg.model.get('distill_losses', {}).items():
        loss = spec.get('loss', {})
        for key in WARMUP_KEYS:
            warmup = loss.get(key, 0)
            if warmup:
                loss[key] = max(1, round(warmup * run / planned))
                scaled[name] = (warmup, loss[key])
    return scaled


def config_hash(cfg):
    """Key of a run (teacher or student): its full config text, minus where it is written and
    where the checkout lies (the teacher checkpoint counts by its file name, which carries the
    teacher's own key), so a moved or second checkout of the repository finds the same runs."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = ''
    cfg.train_dataloader.dataset.data_root = ''
    cfg.val_dataloader.dataset.data_root = ''
    cfg.test_dataloader.dataset.data_root = ''
    teacher = cfg.model.get('teacher')
    if isinstance(teacher, dict) and isinstance(teacher.get('checkpoint'), str):
        teacher['checkpoint'] = osp.basename(teacher['checkpoint'])
    text = cfg.pretty_text.replace(REPO, '<repo>')
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---- training ---------------------------------------------------------------------------------

def make_progress_hook(desc, enabled=True):
    """A hook with a tqdm bar over the run's iterations that records validation accuracy."""
    from mmengine.hooks import Hook

    class DemoProgressHook(Hook):
        priority = 'VERY_LOW'

        def __init__(self):
            self.curve, self.bar, self.postfix = [], None, {}

        def before_train(self, runner):
            from tqdm import tqdm
            self.bar = tqdm(total=runner.max_iters, desc=desc, unit='it', disable=not enabled,
                            dynamic_ncols=True, mininterval=1.0, file=sys.stdout)

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.bar.update(1)
            if outputs and runner.iter % 10 == 0:
                loss = outputs['loss']
                loss = loss.detach() if torch.is_tensor(loss) else loss
                self.postfix['loss'] = f'{float(loss):.3f}'
                self.bar.set_postfix(self.postfix, refresh=False)

        def after_val_epoch(self, runner, metrics=None):
            top1 = float(metrics['accuracy/top1'])
            self.curve.append((runner.epoch, top1))
            self.postfix['val top1'] = f'{top1:.2f}'
            if self.bar is not None:
                self.bar.set_postfix(self.postfix)

        def after_train(self, runner):
            self.bar.close()

    return DemoProgressHook()


def train(cfg, desc, progress=True):
    """Train one config with MMEngine's Runner; returns (runner, curve, seconds)."""
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    hook = make_progress_hook(desc, progress)
    runner.register_hook(hook)
    start, cpu = time.perf_counter(), time.process_time()
    runner.train()
    seconds = time.perf_counter() - start
    runner.cpu_seconds = time.process_time() - cpu  # this process's CPU time, all threads
    if not hook.curve:
        raise RuntimeError(f'{desc}: no validation ran; check train_cfg.val_interval.')
    return runner, hook.curve, seconds


def teacher_config(args):
    """The teacher trains on the students' training images and is always scored on the test
    images (its score is a reference line, never a tuning decision)."""
    return load_config(TEACHER, work_dir=osp.join(args.work_dir, 'teacher'),
                       data_root=args.data_root, train_size=args.train_size,
                       epochs=args.teacher_epochs, seed=args.teacher_seed,
                       val_size=args.val_size, num_workers=args.num_workers)


def teacher_path(args, cfg=None):
    """Where the teacher of these settings is (or will be) cached."""
    cfg = teacher_config(args) if cfg is None else cfg
    return osp.join(args.work_dir, f'teacher_{config_hash(cfg)}.pth')


def get_teacher(args, progress=True):
    """Train the teacher, or load its cached result keyed by the config hash."""
    cfg = teacher_config(args)
    key = config_hash(cfg)
    path = teacher_path(args, cfg)
    if osp.isfile(path) and not args.retrain:
        meta = torch.load(path, map_location='cpu', weights_only=True)['meta']
        print(f'Reusing the cached teacher {path} (top-1 {meta["top1"]:.2f}).')
        return path, dict(meta, cached=True)
    runner, curve, seconds = train(cfg, 'teacher', progress)
    meta = dict(top1=curve[-1][1], curve=[list(p) for p in curve], seconds=seconds,
                cpu_seconds=runner.cpu_seconds, config=TEACHER, config_hash=key,
                train_size=args.train_size, epochs=args.teacher_epochs, seed=args.teacher_seed,
                params=sum(p.numel() for p in runner.model.parameters()))
    os.makedirs(args.work_dir, exist_ok=True)
    tmp = path + '.tmp'
    torch.save(dict(state_dict=runner.model.state_dict(), meta=meta), tmp)
    os.replace(tmp, path)
    return path, dict(meta, cached=False)


def student_config(method, args, teacher_path, options=None):
    """The run's config; its work dir is ``<work_dir>/<method>_<config hash>``."""
    cfg = load_config(STUDENTS[method], work_dir='', data_root=args.data_root,
                      train_size=args.train_size, epochs=args.student_epochs, seed=args.seed,
                      val_size=args.val_size, num_workers=args.num_workers,
                      teacher_checkpoint=None if method == 'student' else teacher_path,
                      split=args.split, options=options)
    cfg.work_dir = osp.join(args.work_dir, f'{method}_{config_hash(cfg)}')
    return cfg


def student_cache(method, args, teacher_path, options=None):
    """(config, path to write, path of a cached result or None) of one student run."""
    cfg = student_config(method, args, teacher_path, options)
    path = osp.join(args.work_dir, f'{method}_{config_hash(cfg)}.json')
    return cfg, path, (path if osp.isfile(path) else None)


def pretrain_path(method, args, teacher_path, iters, lr=1e-3, options=None):
    """Where :func:`pretrain` caches its result: keyed by the run's config, iterations, rate."""
    cfg = student_config(method, args, teacher_path, options)
    key = hashlib.sha256(f'{config_hash(cfg)} {iters} {lr}'.encode()).hexdigest()[:12]
    return osp.join(args.work_dir, f'pretrain_{method}_{key}.pth')


def pretrain(method, args, teacher_path, iters, lr=1e-3, options=None):
    """Pre-train the DiffKD modules of a run's config on teacher features (cached); returns the
    file for ``model.init_distill_losses``."""
    from mmengine.runner import Runner

    from mmdiffkd.engine.diffkd_pretrain import pretrain_diffkd, save_distill_losses
    path = pretrain_path(method, args, teacher_path, iters, lr, options)
    if osp.isfile(path):
        return path
    cfg = student_config(method, args, teacher_path, options)
    cfg.work_dir = osp.splitext(path)[0]
    runner = Runner.from_cfg(cfg)
    loader = runner.build_dataloader(cfg.train_dataloader, seed=runner.seed)
    rows = pretrain_diffkd(runner.model, loader, iters, lr, log_interval=max(1, iters // 10))
    return save_distill_losses(runner.model, path, dict(iters=iters, lr=lr, log=rows))


def train_student(method, args, teacher_path, progress=True, options=None):
    # A run is cached by its config (which names the teacher checkpoint, itself keyed by the
    # teacher's config): re-running prints the table without training again.
    cfg, path, found = student_cache(method, args, teacher_path, options)
    if found and not args.retrain:
        with open(found) as f:
            result = json.load(f)
        print(f'Reusing the cached {method} run {found} (top-1 {result["top1"]:.2f}).')
        return dict(result, cached=True)
    runner, curve, seconds = train(cfg, method, progress)
    model = runner.model
    student = model.student if hasattr(model, 'student') else model
    n_student = sum(p.numel() for p in student.parameters())
    result = dict(top1=curve[-1][1], curve=[list(p) for p in curve], seconds=seconds,
                  cpu_seconds=runner.cpu_seconds, params=n_student,
                  extra_params=sum(p.numel() for p in model.parameters()) - n_student,
                  split=args.split, work_dir=osp.relpath(cfg.work_dir, args.work_dir),
                  options=options or {})
    with open(path + '.tmp', 'w') as f:
        json.dump(result, f)
    os.replace(path + '.tmp', path)
    return dict(result, cached=False)


# ---- report -----------------------------------------------------------------------------------

def format_table(results, args):
    teacher = results['teacher']['top1']
    alone = results.get('student', {}).get('top1')
    n_val = args.val_size or 10000
    lines = [
        f'Fashion-MNIST, trained on the first {args.train_size} of 60000 training images '
        f'(teacher {args.teacher_epochs} epochs, students {args.student_epochs} epochs), '
        f'top-1 on {n_val} test images, seed {args.seed}.',
        '',
        f'| {"model":34s} | params | top-1 (%) | gap closed | train time (s) |',
        f'|{"-" * 36}|-------:|----------:|-----------:|---------------:|',
    ]
    for name, res in results.items():
        if name == 'teacher' or alone is None:
            closed = '' if name in ('teacher', 'student') else 'n/a'
        else:
            closed = '' if name == 'student' else f'{gap_closed(res["top1"], alone, teacher):.0f}%'
        secs = f'{res["seconds"]:.0f}' + (' (cached)' if res.get('cached') else '')
        lines.append(f'| {LABELS[name]:34s} | {res["params"] / 1e3:5.0f}k | {res["top1"]:9.2f} '
                     f'| {closed:>10s} | {secs:>14s} |')
    lines.append('')
    lines.append('gap closed = (top-1 - student alone) / (teacher - student alone); params are '
                 "the deployed network's (distillation modules are dropped at export).")
    return '\n'.join(lines)


def plot_curves(results, path, args):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, res in results.items():
        if name == 'teacher':
            continue
        epochs, top1 = zip(*res['curve'])
        ax.plot(epochs, top1, marker='o', label=f'{LABELS[name]} ({res["top1"]:.2f})')
    teacher = results['teacher']['top1']
    ax.axhline(teacher, color='k', ls='--', lw=1, label=f'{LABELS["teacher"]} ({teacher:.2f})')
    ax.set_xlabel('epoch')
    ax.set_ylabel('validation top-1 (%)')
    ax.set_title(f'Fashion-MNIST, {args.train_size} training images, seed {args.seed}')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(args, progress=True):
    """Teacher, then each student; returns the results dict (also written as JSON)."""
    os.makedirs(args.work_dir, exist_ok=True)
    from mmdiffkd.datasets import prepare_fashion_mnist
    prepare_fashion_mnist(args.data_root)
    teacher_path, teacher = get_teacher(args, progress)
    results = {'teacher': teacher}
    for method in args.methods:
        results[method] = train_student(method, args, teacher_path, progress)
    with open(results_path(args), 'w') as f:
        json.dump(dict(settings=vars(args), results=results), f, indent=1)
    return results


def results_path(args):
    return osp.join(args.work_dir, f'results_seed{args.seed}.json')


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = run(args, progress=not args.no_progress)
    print()
    print(format_table(results, args))
    png = plot_curves(results, osp.join(args.work_dir, f'val_top1_seed{args.seed}.png'), args)
    print(f'\nPlot: {png}\nResults: {results_path(args)}'
          f'\nTotal time: {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()
