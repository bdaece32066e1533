"""Scenes benchmark: teacher, student alone and distilled students on the texture scenes.

    python tools/make_scenes.py --out data/scenes                 # once (about 2 min)
    python benchmarks/bench_scenes.py --task det                  # RetinaNet: bbox mAP
    python benchmarks/bench_scenes.py --task seg                  # DeepLabV3: mIoU
    python benchmarks/bench_scenes.py --task det --runs student diffkd --seeds 0 1
    python benchmarks/bench_scenes.py --task det --tune           # benchmarks/tuning.py trials
    python benchmarks/bench_scenes.py --task det --tune --shard 2/2  # every 2nd run (2 processes)
    python benchmarks/bench_scenes.py --task det --runs pkd diffkd --full-schedule  # 6 epochs

Each run is ``tools/train.py CONFIG --work-dir work_dirs/bench_scenes/<task>/<run>_seed<s>``
with ``randomness.seed=<s>``; distilled runs take the teacher of ``teacher_seed<teacher-seed>``.
To fit the 2-core CPU machine, every student (alone or distilled) trains half the teacher's
schedule (``student_options`` below: 3 of 6 epochs, 500 of 1000 iterations). A finished run
leaves ``result.json`` in its work dir and is reused, so the command can be stopped and started
again. Not a CI test: on the shared 2-core CPU machine (one thread per run) the RetinaNet
teacher took 61 min, each RetinaNet student 9-17 min; the DeepLabV3 R-50 teacher 44 min, each
DeepLabV3 R-18 student 7-15 min.

``--tune`` runs the student alone and every trial of ``benchmarks/tuning.py`` for the task
(seed 0, work dirs ``<run>-<trial>_seed0_holdout``): students train on the first 80 % of the
train scenes and are scored on the last 20 % (``tools/make_scenes.py`` writes both parts); the
val scenes, the final tables' test split, are not used. The table goes to
``<work-root>/<task>_tuning.md``.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import tuning  # noqa: E402  (benchmarks/tuning.py: the trials and how runs are shared)
sys.path.insert(1, REPO)  # a checkout, uninstalled
from mmdiffkd.results import format_mean_std, gap_closed, mean_std  # noqa: E402
CONFIGS = osp.join(REPO, 'configs', 'scenes')

HOLDOUT_DIR = 'data/scenes/'
TASKS = {
    'det': dict(
        # Tuning: train on the first 80 % of the train scenes, score on the last 20 %.
        holdout_options=(
            'train_dataloader.dataset.ann_file=annotations/train_fit.json',
            'val_dataloader.dataset.ann_file=annotations/train_holdout.json',
            'val_dataloader.dataset.data_prefix.img=train/images/',
            f'val_evaluator.ann_file={HOLDOUT_DIR}annotations/train_holdout.json',
            'test_dataloader.dataset.ann_file=annotations/train_holdout.json',
            'test_dataloader.dataset.data_prefix.img=train/images/',
            f'test_evaluator.ann_file={HOLDOUT_DIR}annotations/train_holdout.json'),
        metric='coco/bbox_mAP', extra=('coco/bbox_mAP_50', 'coco/bbox_mAP_s'), scale=100.0,
        # Students (alone and distilled) train half the teacher's 6 epochs, LR step after 2.
        student_options=('train_cfg.max_epochs=3', 'train_cfg.val_interval=3',
                         'param_scheduler.1.milestones=[2]'),
        runs={
            'teacher': 'retinanet_r50_fpn_1xb8-6e_scenes.py',
            'student': 'retinanet_r18_fpn_1xb8-6e_scenes.py',
            'diffkd': 'diffkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py',
            'pkd': 'pkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py',
            # the DiffKD config with the paper's recipe: weight 1, no warm-up
            'diffkd-paper': 'diffkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py',
        },
        run_options={'diffkd-paper': ('model.distill_losses.fpn.weight=1.0',
                                      'model.distill_losses.fpn.loss.distill_warmup_iters=0')},
        labels={'teacher': 'RetinaNet R-50 (teacher)', 'student': 'RetinaNet R-18 alone',
                'diffkd': 'R-18 + DiffKD (5 FPN levels, tuned)',
                'pkd': 'R-18 + PKD (5 FPN levels, tuned)',
                'diffkd-paper': 'R-18 + DiffKD (5 FPN levels, paper recipe)'}),
    'seg': dict(
        holdout_options=(
            '+train_dataloader.dataset.ann_file=splits/train_fit.txt',
            '+val_dataloader.dataset.ann_file=splits/train_holdout.txt',
            'val_dataloader.dataset.data_prefix.img_path=train/images',
            'val_dataloader.dataset.data_prefix.seg_map_path=train/labels',
            '+test_dataloader.dataset.ann_file=splits/train_holdout.txt',
            'test_dataloader.dataset.data_prefix.img_path=train/images',
            'test_dataloader.dataset.data_prefix.seg_map_path=train/labels'),
        metric='mIoU', extra=('aAcc',), scale=1.0,
        # Students (alone and distilled) train half the teacher's 1000 iterations.
        student_options=('train_cfg.max_iters=500', 'train_cfg.val_interval=500',
                         'param_scheduler.0.end=500', 'default_hooks.checkpoint.interval=500'),
        runs={
            'teacher': 'deeplabv3_r50-d16_1xb8-1k_scenes.py',
            'student': 'deeplabv3_r18-d16_1xb8-1k_scenes.py',
            'cwd': 'cwd_logits_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py',
            'diffkd': 'diffkd_feat-logits_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py',
            'diffkd-cwd':
                'diffkd-cwd_feat-logits_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py',
            # the DiffKD config with each pixel's logits as a 1x1 feature (kernel 1)
            'diffkd-pixel':
                'diffkd_feat-logits_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py',
        },
        run_options={'diffkd-pixel': ('model.distill_losses.logits.loss.kernel_size=1',)},
        labels={'teacher': 'DeepLabV3 R-50-d16 (teacher)', 'student': 'DeepLabV3 R-18-d16 alone',
                'cwd': 'R-18 + CWD (logits)',
                'diffkd': 'R-18 + DiffKD (layer4 + logit map, tuned)',
                'diffkd-cwd': 'R-18 + DiffKD + CWD',
                'diffkd-pixel': 'R-18 + DiffKD (layer4 + per-pixel logits)'}),
}


def last_scalars(work_dir, key):
    """The last logged line of ``vis_data/scalars.json`` that has ``key`` (the final val)."""
    found = None
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if key in row:
                    found = row
    return found


def last_checkpoint(work_dir):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(path):
        raise FileNotFoundError(f'no checkpoint in {work_dir}: train the teacher first '
                                f'(--runs teacher).')
    with open(path) as f:
        return f.read().strip()


def format_option(key, value):
    """``+key=value`` as ``--cfg-options`` parses it back to ``value`` (``+``: the key may be one
    the config leaves at its default, e.g. a loss argument)."""
    def text(v):
        if isinstance(v, (list, tuple)):
            inner = ','.join(text(x) for x in v)
            return f'[{inner}]' if isinstance(v, list) else f'({inner})'
        return str(v)
    return f'+{key}={text(value)}'


def run_options(task, run, seed, cfg_options=(), trial=None, split='test', full=False):
    """The ``--cfg-options`` of one run: seed, the user's options, the students' schedule
    (half the teacher's; ``full``: the teacher's own), the run's own options (a variant of a
    config), the hold-out data and the trial's settings."""
    spec = TASKS[task]
    options = [f'randomness.seed={seed}', *cfg_options]
    if run != 'teacher' and not full:
        options += spec['student_options']
    options += list(spec.get('run_options', {}).get(run, ()))
    if split == 'holdout':
        options += list(spec['holdout_options'])
    if trial is not None:
        options += [format_option(k, v) for k, v in trial.options.items()]
    return options


def run_name(run, seed, trial=None, split='test', full=False):
    name = run if trial is None else f'{run}-{trial.name}'
    return (f'{name}_seed{seed}' + ('' if split == 'test' else f'_{split}') +
            ('_full' if full and run != 'teacher' else ''))


def run_one(task, run, seed, args, trial=None, split='test'):
    spec = TASKS[task]
    full = getattr(args, 'full_schedule', False)
    work_dir = osp.join(args.work_root, task, run_name(run, seed, trial, split, full))
    result_file = osp.join(work_dir, 'result.json')
    if osp.exists(result_file) and not args.force:
        with open(result_file) as f:
            return json.load(f)
    config = osp.join(CONFIGS, spec['runs'][run])
    if not osp.exists(config):
        raise FileNotFoundError(f'{config} does not exist; runs of {task}: '
                                f'{sorted(spec["runs"])}')
    os.makedirs(work_dir, exist_ok=True)
    options = run_options(task, run, seed, args.cfg_options, trial, split, full)
    finished = collect(work_dir, spec, run, seed, config, options)
    if finished is not None and not args.force:
        return _save(dict(finished, trial=trial and trial.name, split=split), result_file)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if run not in ('teacher', 'student'):
        teacher_dir = osp.join(args.work_root, task, f'teacher_seed{args.teacher_seed}')
        options.append(f'model.teacher.checkpoint={last_checkpoint(teacher_dir)}')
        if trial is not None and trial.pretrain:
            options.append('+model.init_distill_losses=' +
                           pretrain(config, options, work_dir, trial.pretrain, env))
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir,
           '--cfg-options', *options]
    print(f'[{task}] {run_name(run, seed, trial, split)}: {" ".join(cmd)}', flush=True)
    start = time.time()
    with open(osp.join(work_dir, 'train.log'), 'w') as log:
        code = subprocess.call(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code:
        raise RuntimeError(f'{run} seed {seed} failed (exit {code}); see {work_dir}/train.log')
    result = collect(work_dir, spec, run, seed, config, options)
    if result is None:
        raise RuntimeError(f'{run} seed {seed}: no final {spec["metric"]} in {work_dir}')
    result.update(wall_s=time.time() - start, trial=trial and trial.name, split=split)
    return _save(result, result_file)


def pretrain(config, options, work_dir, settings, env):
    """tools/pretrain_diffkd.py for a run (its data and teacher); returns the file it wrote."""
    out = osp.join(work_dir, 'diffkd_pretrained.pth')
    if osp.exists(out):
        return out
    cmd = [sys.executable, osp.join(REPO, 'tools', 'pretrain_diffkd.py'), config,
           '--work-dir', osp.join(work_dir, 'pretrain'), '--out', out,
           '--iters', str(settings['iters']), '--lr', str(settings.get('lr', 1e-3)),
           '--cfg-options', *options]
    with open(osp.join(work_dir, 'pretrain.log'), 'w') as log:
        if subprocess.call(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT):
            raise RuntimeError(f'pre-training failed; see {work_dir}/pretrain.log')
    return out


def _save(result, path):
    with open(path, 'w') as f:
        json.dump(result, f, indent=1)
    return result


def collect(work_dir, spec, run, seed, config, options):
    """The result of a finished run in ``work_dir`` (also one started by hand with
    tools/train.py), or None. Finished = a val row at the schedule's last epoch / iteration."""
    from mmengine.config import Config, DictAction
    row = last_scalars(work_dir, spec['metric'])
    if row is None:
        return None
    cfg = Config.fromfile(config)
    parsed = {}
    for option in options:
        key, value = option.split('=', 1)
        parsed[key.lstrip('+')] = DictAction._parse_iterable(value)
    cfg.merge_from_dict(parsed)
    train_cfg = cfg.train_cfg
    last = train_cfg.get('max_epochs', train_cfg.get('max_iters'))
    if row.get('step') != last:
        return None
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))[-1]
    started = time.mktime(time.strptime(scalars.split(os.sep)[-3], '%Y%m%d_%H%M%S'))
    return dict(run=run, seed=seed, config=osp.basename(config), options=list(options),
                wall_s=osp.getmtime(scalars) - started,
                metrics={k: row[k] for k in (spec['metric'], *spec['extra']) if k in row})


def table(task, results):
    """Markdown table: metric mean +- std over seeds, gap closed against the student alone."""
    spec = TASKS[task]
    key, scale = spec['metric'], spec['scale']
    by_run = {}
    for r in results:
        by_run.setdefault(r['run'], []).append(r)
    mean = {run: mean_std([r['metrics'][key] * scale for r in rs])[0]
            for run, rs in by_run.items()}
    name = 'bbox mAP' if task == 'det' else 'mIoU'
    extra = spec['extra'][0]
    rows = [f'| model | {name} (mean ± std) | {extra} | gap closed | seeds | '
            f'train time per run |', '|---|---:|---:|---:|---|---:|']
    for run in spec['runs']:
        if run not in by_run:
            continue
        rs = by_run[run]
        values = [r['metrics'][key] * scale for r in rs]
        m = mean_std(values)[0]
        ex = mean_std([r['metrics'].get(extra, math.nan) * scale for r in rs])[0]
        gap = ''
        if run not in ('teacher', 'student') and {'teacher', 'student'} <= set(mean):
            gap = f'{gap_closed(m, mean["student"], mean["teacher"]):.0f}%'
        wall = sum(r['wall_s'] for r in rs) / len(rs) / 60
        rows.append(f'| {spec["labels"][run]} | {format_mean_std(values, 1)} | {ex:.1f} | {gap} | '
                    f'{", ".join(str(r["seed"]) for r in rs)} | {wall:.0f} min |')
    return '\n'.join(rows)


def tune(args, grid=None):
    """Student alone and every trial of the task on the hold-out part (seed 0); the table."""
    grid = grid or tuning.SCENES[args.task]
    runs = tuning.tuning_runs(grid)
    mine = runs if args.shard is None else tuning.shard_filter(runs, args.shard)
    results = {}
    for run, trial in runs:
        if (run, trial) in mine:
            results[(run, trial and trial.name)] = run_one(args.task, run, 0, args, trial,
                                                           'holdout')
            continue
        path = osp.join(args.work_root, args.task, run_name(run, 0, trial, 'holdout'),
                        'result.json')
        if osp.exists(path):  # another shard's run, finished
            with open(path) as f:
                results[(run, trial and trial.name)] = json.load(f)
    text = tuning_table(args.task, grid, results)
    path = osp.join(args.work_root, f'{args.task}_tuning.md')
    with open(path + '.tmp', 'w') as f:
        f.write(text + '\n')
    os.replace(path + '.tmp', path)
    return text


def tuning_table(task, grid, results):
    spec = TASKS[task]
    key, scale = spec['metric'], spec['scale']
    alone = results.get(('student', None))
    alone = 'not run yet' if alone is None else f'{alone["metrics"][key] * scale:.1f}'
    lines = [f'Tuning on the hold-out part of the train scenes (last 20 %; students trained on the '
             f'first 80 %), seed 0. Student alone: {alone}.', '']
    lines += tuning.trials_tables(
        grid, lambda r, t: (results[(r, t.name)]['metrics'][key] * scale
                            if (r, t.name) in results else None), key, 1)
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', choices=sorted(TASKS), required=True)
    parser.add_argument('--runs', nargs='+', help='default: every run of the task')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--teacher-seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=2, help='torch threads per run')
    parser.add_argument('--work-root', default=osp.join(REPO, 'work_dirs', 'bench_scenes'))
    parser.add_argument('--force', action='store_true', help='retrain cached runs')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='extra key=value options for every run')
    parser.add_argument('--tune', action='store_true',
                        help='the tuning trials of benchmarks/tuning.py on the hold-out part')
    parser.add_argument('--shard', type=tuning.parse_shard, help='i/n: every n-th run only')
    parser.add_argument('--full-schedule', action='store_true',
                        help="students train the teacher's whole schedule (work dirs *_full)")
    args = parser.parse_args(argv)
    if args.tune:
        print(tune(args))
        return
    runs = args.runs or list(TASKS[args.task]['runs'])
    unknown = sorted(set(runs) - set(TASKS[args.task]['runs']))
    if unknown:
        parser.error(f'unknown runs {unknown} for --task {args.task}; choose from '
                     f'{sorted(TASKS[args.task]["runs"])}')
    plan = [('teacher', args.teacher_seed)] if 'teacher' in runs else []
    plan += [(run, seed) for seed in args.seeds for run in runs if run != 'teacher']
    if args.shard:
        plan = tuning.shard_filter(plan, args.shard)
    results = [run_one(args.task, run, seed, args) for run, seed in plan]
    out = table(args.task, results)
    print(out)
    path = osp.join(args.work_root, f'{args.task}_table.md')
    with open(path, 'w') as f:
        f.write(out + '\n')
    print(f'written to {path}')


if __name__ == '__main__':
    main()
