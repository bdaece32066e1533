"""Summarise the DiffKD diagnostics of finished runs: what the denoiser did, per entry.

    python benchmarks/diffkd_diagnostics.py WORK_DIR [WORK_DIR ...] [--plot curves.png]

Reads each run's ``<timestamp>/vis_data/scalars.json`` (MMEngine's log, every logged training
iteration) and prints, per run and DiffKD entry (declaration / FPN level), the mean of ``gamma``,
``aligned_mse`` and ``denoise_gain`` over the first and the last tenth of the logged iterations.
``aligned_mse`` falling means the student moved towards the teacher; a ``denoise_gain`` well above
1 with a flat ``aligned_mse`` means the denoiser, not the student, made the match. ``--plot``
draws the curves of the first run (the same figure as DiffKDVisHook's end-of-training plot).
"""
import argparse
import glob
import json
import os.path as osp
import sys

import numpy as np

NAMES = ('gamma', 'aligned_mse', 'denoise_gain')


def read_series(work_dir):
    """``{name: {entry: values}}`` of the training rows of every scalars.json in ``work_dir``
    (resumed runs have several, read in time order)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'{work_dir}: no <timestamp>/vis_data/scalars.json (not an '
                                'MMEngine work dir, or the run logged nothing yet).')
    rows = {}
    for path in files:
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'lr' in row or any(k.endswith('.gamma') for k in row):  # training rows
                    rows[row.get('iter', row.get('step'))] = row
    series = {}
    for _, row in sorted(rows.items(), key=lambda kv: kv[0] or 0):
        for key, value in row.items():
            entry, _, name = key.rpartition('.')
            if entry and name in NAMES:
                series.setdefault(name, {}).setdefault(entry, []).append(float(value))
    if not series:
        raise ValueError(f'{work_dir}: the log has no DiffKD diagnostics (<entry>.gamma, ...): '
                         'not a DiffKD run, or one made before the diagnostics existed.')
    return {n: {e: np.asarray(v) for e, v in d.items()} for n, d in series.items()}


def summary(series, fraction=0.1):
    """``{entry: {name: (early mean, late mean)}}`` over the first / last ``fraction``."""
    out = {}
    for name, entries in series.items():
        for entry, values in entries.items():
            k = max(1, int(round(len(values) * fraction)))
            out.setdefault(entry, {})[name] = (float(values[:k].mean()),
                                               float(values[-k:].mean()))
    return out


def table(runs):
    """Markdown table from ``[(label, summary)]``."""
    head = ['| run | entry | ' + ' | '.join(f'{n} (first → last 10 %)' for n in NAMES) + ' |',
            '|---|---|' + '---:|' * len(NAMES)]
    rows = []
    for label, summ in runs:
        for entry in sorted(summ):
            cells = []
            for n in NAMES:
                early, late = summ[entry].get(n, (float('nan'), float('nan')))
                cells.append(f'{early:.3g} → {late:.3g}')
            rows.append(f'| {label} | {entry} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(head + rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--labels', nargs='+', help='one label per work dir (default: its name)')
    parser.add_argument('--plot', help='PNG of the first run\'s curves')
    args = parser.parse_args(argv)
    labels = args.labels or [osp.basename(osp.normpath(w)) for w in args.work_dirs]
    if len(labels) != len(args.work_dirs):
        parser.error(f'{len(labels)} labels for {len(args.work_dirs)} work dirs.')
    all_series = [read_series(w) for w in args.work_dirs]
    print(table([(label, summary(s)) for label, s in zip(labels, all_series)]))
    if args.plot:
        sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
        from PIL import Image

        from mmdiffkd.engine.diffkd_vis_hook import render_curves
        Image.fromarray(render_curves(all_series[0])).save(args.plot)
        print(f'curves of {labels[0]}: {args.plot}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
