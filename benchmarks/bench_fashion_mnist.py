"""Every Fashion-MNIST distillation method over several student seeds, in one table.

    python benchmarks/bench_fashion_mnist.py --list     # what is cached, what would train, how long
    python benchmarks/bench_fashion_mnist.py            # all methods, seeds 0 1 2, demo settings
    python benchmarks/bench_fashion_mnist.py --methods student kd dkd --seeds 0 1
    python benchmarks/bench_fashion_mnist.py --tune     # benchmarks/tuning.py, hold-out split
    python benchmarks/bench_fashion_mnist.py --tune --shard 1/2  # half of the runs (2 processes)

The protocol is the demo's (``tools/demo.py``: its options, e.g. ``--train-size``, pass through):
one teacher (``--teacher-seed``, the demo's cached one) teaches every seed; each (method, seed)
run is cached by the demo under its full config (subset, epochs, seed, teacher checkpoint), so
the demo's runs are reused and an interrupted benchmark resumes where it stopped. Seed 0 of every
method trains before any seed 1 run, so a partial run already gives one full column. A loss
warm-up (DKD's) is scaled to the run's length (``demo.scale_warmups``). After every run the table
(top-1 per seed, mean +- sample std, share of the teacher-student gap closed) is written to
``--out`` (default ``<work-dir>/comparison.md``) and the numbers to ``comparison.json``.
``--tune`` trains every trial of ``benchmarks/tuning.py`` (student seed 0) and the student
alone, all scored on the hold-out split (the last 10000 training images, never trained on), and
writes ``<work-dir>/tuning.md``. ``--shard i/n`` runs every n-th run only, so two processes (one
torch thread each) share the work; train the teacher first (``--list`` says whether it is cached).
Not a CI test: each run takes minutes on a CPU.
"""
import argparse
import importlib.util
import json
import math
import os
import os.path as osp
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import tuning  # noqa: E402  (benchmarks/tuning.py: the trials and how runs are shared)
sys.path.insert(1, REPO)  # a checkout, uninstalled
from mmdiffkd.results import format_mean_std, gap_closed  # noqa: E402
# Where a method has no cached run of this protocol, its time is estimated from one that has:
# the logit and feature losses add little to KD's teacher + student passes; the DiffKD
# combinations cost about DiffKD's.
REFERENCE = {'dkd': 'kd', 'aekt': 'kd', 'fitnets': 'kd', 'cwd': 'kd', 'vkd': 'kd', 'rtk': 'kd',
             'diffkd-kd': 'diffkd', 'diffkd-dist': 'diffkd'}


def load_demo():
    spec = importlib.util.spec_from_file_location('mmdiffkd_demo',
                                                  osp.join(REPO, 'tools', 'demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def resolve_methods(names, demo):
    """Method keys of ``demo.STUDENTS`` in its order; accepts 'all', any case, '+' for '-'."""
    if not names or 'all' in [n.lower() for n in names]:
        return list(demo.STUDENTS)
    wanted = []
    for name in names:
        key = name.lower().replace('+', '-')
        if key not in demo.STUDENTS:
            raise ValueError(f'unknown method {name!r}; valid: all, {", ".join(demo.STUDENTS)}')
        if key not in wanted:
            wanted.append(key)
    return [m for m in demo.STUDENTS if m in wanted]


def plan(demo, methods, seeds, rest):
    """The runs, seed-major (every method's first seed first): dicts with seed, method, args,
    path (written on training) and cached (the result file found, or None)."""
    runs, warmups, teacher = [], {}, None
    for seed in seeds:
        args = demo.parse_args(rest + ['--seed', str(seed), '--no-progress'])
        teacher = teacher or demo.teacher_path(args)  # --seed is the students' only
        for method in methods:
            if method not in warmups:  # what the demo's load_config does to this config
                warmups[method] = demo.scale_warmups(demo.read_config(demo.STUDENTS[method]),
                                                     args.train_size, args.student_epochs)
            _, path, found = demo.student_cache(method, args, teacher)
            runs.append(dict(seed=seed, method=method, args=args, path=path, cached=found,
                             warmups=warmups[method]))
    return runs


def summarize(top1, teacher, seeds, labels):
    """Markdown table from ``top1[method][seed]`` (missing runs are left out of the means).

    Gap closed is computed per seed against that seed's student alone, then averaged.
    """
    head = '| method | ' + ' | '.join(f'seed {s}' for s in seeds) + \
        ' | top-1 (%), mean ± std | gap closed (%), mean ± std |'
    rows = [head, '|---|' + '---:|' * (len(seeds) + 2)]
    rows.append(f'| {labels["teacher"]} |' + ' |' * len(seeds) +
                f' {teacher:.2f} (one teacher) | |')
    alone = top1.get('student', {})
    for method, per_seed in top1.items():
        values = [per_seed.get(s) for s in seeds]
        cells = ' | '.join('—' if v is None else f'{v:.2f}' for v in values)
        gaps = [gap_closed(per_seed[s], alone[s], teacher) for s in seeds
                if s in per_seed and s in alone]
        gap = '' if method == 'student' else format_mean_std(gaps, 0)
        rows.append(f'| {labels[method]} | {cells} | {format_mean_std(values, 2)} | {gap} |')
    return '\n'.join(rows)


def estimate(runs):
    """Per run: (wall s, CPU s, where from) from the cached runs of the same method (median),
    else of its REFERENCE method; (None, None, None) when neither is cached."""
    measured = {}
    for run in runs:
        if run['cached']:
            with open(run['cached']) as f:
                result = json.load(f)
            measured.setdefault(run['method'], []).append(
                (result['seconds'], result.get('cpu_seconds', float('nan'))))
    out = []
    for run in runs:
        source = run['method'] if run['method'] in measured else REFERENCE.get(run['method'])
        if source not in measured:
            out.append((None, None, None))
            continue
        wall, cpu = zip(*measured[source])
        out.append((statistics.median(wall), statistics.median(cpu), source))
    return out


def describe(args, seeds):
    return (f'Fashion-MNIST, first {args.train_size} of 60000 training images, teacher '
            f'{args.teacher_epochs} epochs (seed {args.teacher_seed}), students '
            f'{args.student_epochs} epochs, top-1 on {args.val_size or 10000} test images, '
            f'student seeds {" ".join(map(str, seeds))}.')


def print_plan(demo, runs, teacher_cached):
    """The --list output: one line per run, cached or to train with an estimate."""
    times = estimate(runs)
    args = runs[0]['args']
    print(describe(args, sorted({r['seed'] for r in runs})))
    print(f'teacher: {"cached" if teacher_cached else "TO TRAIN first (not estimated)"} '
          f'{demo.teacher_path(args)}')
    todo_wall = todo_cpu = 0.0
    unknown = 0
    for run, (wall, cpu, source) in zip(runs, times):
        name = f'seed {run["seed"]} {run["method"]:12s}'
        if run['cached']:
            print(f'  cached    {name} {osp.basename(run["cached"])}')
            continue
        if wall is None:
            unknown += 1
            guess = 'no estimate (no cached run of it or of its reference)'
        else:
            todo_wall, todo_cpu = todo_wall + wall, todo_cpu + cpu
            guess = f'~{wall:.0f} s wall, ~{cpu:.0f} s CPU (median of cached {source} runs)'
        warm = ''.join(f', {name} warm-up {a} -> {b} iterations'
                       for name, (a, b) in run['warmups'].items())
        print(f'  TO TRAIN  {name} -> {osp.basename(run["path"])}: {guess}{warm}')
    n_todo = sum(not r['cached'] for r in runs)
    line = f'{len(runs) - n_todo} of {len(runs)} runs cached, {n_todo} to train'
    if n_todo > unknown:
        line += (f': about {todo_wall / 3600:.1f} h wall ({todo_wall:.0f} s), {todo_cpu:.0f} s '
                 f'CPU for {n_todo - unknown} of them, one run at a time (wall times of the '
                 'cached runs, taken on a machine as busy as it was then)')
    if unknown:
        line += f'; {unknown} not estimated'
    print(line + '.')
    return n_todo


def write_report(top1, teacher, runs, out, seeds, demo):
    table = summarize(top1, teacher, seeds, demo.LABELS)
    n_done = sum(len(v) for v in top1.values())
    text = '\n'.join([
        describe(runs[0]['args'], seeds) + f' {n_done} of {len(runs)} runs done; std is the '
        'sample std over seeds; gap closed = (top-1 - student alone) / (teacher - student '
        'alone), per seed, then averaged.', '', table, ''])
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    for path, content in ((out, text), (osp.splitext(out)[0] + '.json', json.dumps(
            dict(settings={k: v for k, v in vars(runs[0]['args']).items()
                           if k not in ('seed', 'methods', 'retrain', 'no_progress')},
                 methods=list(top1), seeds=seeds, teacher_top1=teacher,
                 top1={m: {str(s): v for s, v in d.items()} for m, d in top1.items()}),
            indent=1))):
        with open(path + '.tmp', 'w') as f:
            f.write(content)
        os.replace(path + '.tmp', path)
    return text


def tune(demo, rest, shard=None, grid=None):
    """Train (or reuse) every tuning trial on the hold-out split; returns the report text."""
    grid = grid or tuning.FASHION_MNIST
    args = demo.parse_args(rest + ['--seed', '0', '--split', 'holdout', '--no-progress'])
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmdiffkd.datasets import prepare_fashion_mnist
    prepare_fashion_mnist(args.data_root)
    teacher_path, teacher = demo.get_teacher(args, progress=False)
    runs = tuning.tuning_runs(grid)
    mine = runs if shard is None else tuning.shard_filter(runs, shard)
    results = {}
    for method, trial in runs:
        options = None if trial is None else dict(trial.options)
        if trial is not None and trial.pretrain:
            options['model.init_distill_losses'] = demo.pretrain_path(
                method, args, teacher_path, options=trial.options, **trial.pretrain)
        _, _, found = demo.student_cache(method, args, teacher_path, options)
        if (method, trial) in mine and not found:
            if trial is not None and trial.pretrain:
                demo.pretrain(method, args, teacher_path, options=trial.options,
                              **trial.pretrain)
            print(f'training {method} {trial.name if trial else "alone"} on the hold-out '
                  'split', flush=True)
            found = True
            result = demo.train_student(method, args, teacher_path, progress=False,
                                        options=options)
        elif found:
            with open(found) as f:
                result = json.load(f)
        else:
            continue  # another shard's run, not finished yet
        results[(method, trial.name if trial else 'alone')] = result
    text = tuning_report(results, grid, args, teacher['top1'])
    out = osp.join(args.work_dir, 'tuning.md')
    with open(out + '.tmp', 'w') as f:
        f.write(text)
    os.replace(out + '.tmp', out)
    return text


def tuning_report(results, grid, args, teacher_test_top1):
    """Markdown: per method its trials by hold-out top-1, best first."""
    alone = results.get(('student', 'alone'), {}).get('top1')
    lines = [f'Tuning on the hold-out split (the last 10000 Fashion-MNIST training images), '
             f'students trained on the first {args.train_size} for {args.student_epochs} '
             f'epochs, seed 0. Student alone: '
             f'{"not run yet" if alone is None else f"{alone:.2f}"}; the teacher (test split, '
             f'for reference) {teacher_test_top1:.2f}.', '']
    lines += tuning.trials_tables(
        grid, lambda m, t: results.get((m, t.name), {}).get('top1'), 'top-1 (%)', 2)
    return '\n'.join(lines)


def parse(argv, demo):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='Other options go to tools/demo.py (see its --help): --train-size, '
        '--student-epochs, --teacher-epochs, --val-size, --work-dir, --data-root, ...')
    parser.add_argument('--methods', nargs='+', default=['all'],
                        help=f'all (default) or some of: {" ".join(demo.STUDENTS)}')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--list', '--dry-run', dest='list', action='store_true',
                        help='print which runs are cached and which would train, then stop')
    parser.add_argument('--out', help='markdown table (default <work-dir>/comparison.md)')
    parser.add_argument('--tune', action='store_true',
                        help='run the tuning trials of benchmarks/tuning.py on the hold-out split')
    parser.add_argument('--shard', type=tuning.parse_shard, help='i/n: every n-th run only')
    known, rest = parser.parse_known_args(argv)
    if len(set(known.seeds)) != len(known.seeds):
        parser.error(f'--seeds {known.seeds}: give distinct seeds.')
    if '--retrain' in rest:
        parser.error('--retrain is not supported here (it would retrain the cached teacher); '
                     'a run trains again once its result file (see --list) is removed.')
    try:
        known.methods = resolve_methods(known.methods, demo)
    except ValueError as err:
        parser.error(str(err))
    return known, rest


def main(argv=None):
    demo = load_demo()
    known, rest = parse(argv, demo)
    if known.tune:
        print(tune(demo, rest, known.shard))
        return 0
    runs = plan(demo, known.methods, known.seeds, rest)
    if known.shard:
        runs = tuning.shard_filter(runs, known.shard)
    args = runs[0]['args']
    out = known.out or osp.join(args.work_dir, 'comparison.md')
    teacher_file = demo.teacher_path(args)
    n_todo = print_plan(demo, runs, osp.isfile(teacher_file))
    if known.list:
        return 0
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmdiffkd.datasets import prepare_fashion_mnist
    prepare_fashion_mnist(args.data_root)
    start = time.perf_counter()
    teacher_path, teacher = demo.get_teacher(args, progress=False)
    top1 = {m: {} for m in known.methods}
    done = 0
    for run in runs:
        if not run['cached']:
            done += 1
            print(f'[{done}/{n_todo}] training seed {run["seed"]} {run["method"]} '
                  f'({time.perf_counter() - start:.0f} s so far)', flush=True)
        result = demo.train_student(run['method'], run['args'], teacher_path, progress=False)
        top1[run['method']][run['seed']] = result['top1']
        text = write_report(top1, teacher['top1'], runs, out, known.seeds, demo)
    print('\n' + text)
    print(f'Table: {out}\nwall time of this command: {time.perf_counter() - start:.0f} s '
          '(cached runs cost nothing)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
