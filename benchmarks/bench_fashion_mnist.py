"""The demo's comparison over several student seeds: mean +- std of top-1 and of the gap closed.

    python benchmarks/bench_fashion_mnist.py                    # seeds 0 1 2, demo settings
    python benchmarks/bench_fashion_mnist.py --seeds 0 1 2 --train-size 60000 ...

One teacher (``--teacher-seed``, cached like the demo's) teaches every seed; each seed trains the
student alone, KD, DIST and DiffKD. A seed whose results file already exists with the same
settings (e.g. written by ``tools/demo.py``) is reused, unless ``--force``. Not a CI test: it
takes about as long as the demo per seed.
"""
import argparse
import importlib.util
import json
import math
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SAME = ('train_size', 'val_size', 'teacher_epochs', 'student_epochs', 'teacher_seed',
        'data_root')


def load_demo():
    spec = importlib.util.spec_from_file_location('mmdiffkd_demo',
                                                  osp.join(REPO, 'tools', 'demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def mean_std(values):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float('nan'), float('nan')
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def summarize(per_seed, demo):
    """Markdown table: mean +- sample std over seeds of top-1 and gap closed."""
    seeds = sorted(per_seed)
    teacher = per_seed[seeds[0]]['teacher']['top1']
    rows = [f'| {"model":34s} | top-1 (%), mean ± std | gap closed (%), mean ± std | per seed |',
            f'|{"-" * 36}|---------------------:|---------------------------:|---|']
    rows.append(f'| {demo.LABELS["teacher"]:34s} | {teacher:20.2f} | {"":>26s} | one teacher |')
    methods = [m for m in per_seed[seeds[0]] if m != 'teacher']
    for method in methods:
        top1 = [per_seed[s][method]['top1'] for s in seeds]
        gaps = [demo.gap_closed(per_seed[s][method]['top1'], per_seed[s]['student']['top1'],
                                teacher) for s in seeds] if 'student' in methods else []
        m, sd = mean_std(top1)
        gap = '' if method == 'student' or not gaps else '{:.0f} ± {:.0f}'.format(
            *mean_std(gaps))
        each = ', '.join(f'{v:.2f}' for v in top1)
        rows.append(f'| {demo.LABELS[method]:34s} | {m:13.2f} ± {sd:4.2f} | {gap:>26s} | '
                    f'{each} |')
    return '\n'.join(rows)


def main(argv=None):
    demo = load_demo()
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--force', action='store_true', help='retrain seeds with results')
    known, rest = parser.parse_known_args(argv)
    if len(known.seeds) < 2 or len(set(known.seeds)) != len(known.seeds):
        parser.error(f'--seeds {known.seeds}: give at least two distinct seeds.')
    start = time.perf_counter()
    per_seed, settings = {}, None
    for seed in known.seeds:
        args = demo.parse_args(rest + ['--seed', str(seed), '--no-progress'])
        settings = args
        path = demo.results_path(args)
        if osp.isfile(path) and not known.force:
            with open(path) as f:
                saved = json.load(f)
            if all(saved['settings'].get(k) == getattr(args, k) for k in SAME) and \
                    set(args.methods) <= set(saved['results']):
                print(f'seed {seed}: reusing {path}', flush=True)
                per_seed[seed] = saved['results']
                continue
        print(f'seed {seed}: training {", ".join(args.methods)}', flush=True)
        per_seed[seed] = demo.run(args, progress=False)
    a = settings
    print(f'\nFashion-MNIST, first {a.train_size} of 60000 training images, teacher '
          f'{a.teacher_epochs} epochs (seed {a.teacher_seed}), students {a.student_epochs} '
          f'epochs, top-1 on {a.val_size or 10000} test images, student seeds '
          f'{known.seeds}; std is the sample std over seeds.\n')
    print(summarize(per_seed, demo))
    print(f'\nwall time of this command: {time.perf_counter() - start:.0f} s '
          f'(reused seeds cost nothing)')
    with open(osp.join(a.work_dir, 'benchmark.json'), 'w') as f:
        json.dump({str(k): v for k, v in per_seed.items()}, f, indent=1)


if __name__ == '__main__':
    sys.exit(main())
