"""The all-methods Fashion-MNIST benchmark (benchmarks/bench_fashion_mnist.py): method names,
per-run caching and resume, seed-major order, the table's arithmetic, DKD's warm-up scaled to
the run, and the tuning stage on the hold-out split."""
import importlib.util
import json
import os.path as osp
import types

import pytest
import torch
from helpers import REPO

pytest.importorskip('mmpretrain', reason='needs mmpretrain (bash tools/setup.sh)')

ALL = ['student', 'kd', 'dist', 'dkd', 'fitnets', 'cwd', 'vkd', 'rtk', 'aekt', 'diffkd',
       'diffkd-paper', 'diffkd-kd', 'diffkd-dist']


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def bench():
    return _load('mmdiffkd_bench_fm', 'benchmarks/bench_fashion_mnist.py')


@pytest.fixture(scope='module')
def demo(bench):
    return bench.load_demo()


def _rest(tmp_path):
    return ['--work-dir', str(tmp_path), '--data-root', str(tmp_path / 'data'), '--train-size',
            '256', '--val-size', '200', '--teacher-epochs', '1', '--student-epochs', '1',
            '--num-workers', '0']


def test_methods_resolve_to_existing_configs(bench, demo):
    assert bench.resolve_methods(['all'], demo) == ALL
    assert bench.resolve_methods([], demo) == ALL
    for method in ALL:
        assert osp.isfile(osp.join(demo.CONFIG_DIR, demo.STUDENTS[method])), method
        assert method in demo.LABELS
    # Paper spellings, duplicates, and the table's order whatever the order given.
    assert bench.resolve_methods(['DiffKD+KD', 'KD', 'kd', 'student'], demo) == \
        ['student', 'kd', 'diffkd-kd']
    with pytest.raises(ValueError, match='unknown method'):
        bench.resolve_methods(['mgd'], demo)
    # The demo alone still trains its four.
    assert demo.parse_args([]).methods == ['student', 'kd', 'dist', 'diffkd']


@pytest.mark.parametrize('argv, message', [
    (['--methods', 'nope'], 'unknown method'),
    (['--seeds', '0', '0'], 'distinct'),
    (['--retrain'], '--retrain is not supported'),
])
def test_bad_arguments(bench, demo, capsys, argv, message):
    with pytest.raises(SystemExit):
        bench.parse(argv, demo)
    assert message in capsys.readouterr().err


def test_table_math_on_hand_made_numbers(bench, demo):
    from mmdiffkd.results import mean_std
    m, sd = mean_std([1.0, 2.0, 3.0, 4.0])
    assert m == pytest.approx(2.5) and sd == pytest.approx(1.2909944, rel=1e-6)  # n - 1
    assert bench.gap_closed(85.0, 80.0, 90.0) == pytest.approx(50.0)
    top1 = {'student': {0: 80.0, 1: 82.0},
            'kd': {0: 85.0, 1: 86.0},     # gaps 5/10 and 4/8: 50 and 50
            'dkd': {0: 88.0}}             # seed 1 missing: one seed, gap 80
    table = bench.summarize(top1, 90.0, [0, 1], demo.LABELS).splitlines()
    assert table[0].startswith('| method | seed 0 | seed 1 |')
    assert '90.00 (one teacher)' in table[2]
    assert table[3] == '| Student ResNet-18 w4 alone | 80.00 | 82.00 | 81.00 ± 1.41 |  |'
    assert table[4] == '| Student + KD (logits) | 85.00 | 86.00 | 85.50 ± 0.71 | 50 ± 0 |'
    assert table[5] == '| Student + DKD (logits) | 88.00 | — | 88.00 (1 seed) | 80 (1 seed) |'


def test_dkd_warmup_scaled_to_the_run(demo):
    def warmup(train_size, epochs, name='dkd'):
        cfg = demo.load_config(demo.STUDENTS[name], work_dir='w', data_root='d',
                               train_size=train_size, epochs=epochs, seed=0)
        return cfg.model.distill_losses.logits.loss.get('warmup_iters')

    assert warmup(60000, 30) == 1172            # the config's own schedule: as written
    assert warmup(10000, 8) == 53               # 8 x 79 iterations: 1172 / 14070 of them
    assert abs(53 / 632 - 20 / 240) < 1 / 632   # the DKD authors' 20 of 240 epochs
    assert warmup(256, 1) == 1                  # never 0 (0 would switch the ramp off)
    assert warmup(10000, 8, 'kd') is None        # losses without a warm-up are left alone
    assert demo.scale_warmups(demo.read_config(demo.STUDENTS['dkd']), 10000, 8) == \
        {'logits': (1172, 53)}


def _fake_train(calls):
    def train(cfg, desc, progress=True):
        calls.append((cfg.randomness.seed, desc))
        runner = types.SimpleNamespace(model=torch.nn.Linear(2, 2), cpu_seconds=1.0)
        return runner, [(1, 70.0 + len(calls))], 2.0
    return train


def test_plan_order_caching_and_resume(bench, demo, tmp_path, monkeypatch, capsys):
    rest = _rest(tmp_path)
    runs = bench.plan(demo, ['student', 'kd', 'dkd'], [0, 1], rest)
    assert [(r['seed'], r['method']) for r in runs] == [
        (0, 'student'), (0, 'kd'), (0, 'dkd'), (1, 'student'), (1, 'kd'), (1, 'dkd')]
    assert not any(r['cached'] for r in runs)
    assert len({r['path'] for r in runs}) == 6  # one key per (method, seed)
    assert runs[2]['warmups'] == {'logits': (1172, 1)} and runs[1]['warmups'] == {}

    # A run cached beforehand (e.g. by the demo) is listed as cached and not trained again.
    with open(runs[1]['path'], 'w') as f:
        json.dump(dict(top1=77.5, seconds=100.0, cpu_seconds=40.0, curve=[[1, 77.5]],
                       params=1, extra_params=0), f)

    calls = []
    monkeypatch.setattr(bench, 'load_demo', lambda: demo)
    monkeypatch.setattr(demo, 'train', _fake_train(calls))
    monkeypatch.setattr(demo, 'get_teacher', lambda args, progress=True: (
        demo.teacher_path(args), dict(top1=90.0)))
    import mmdiffkd.datasets
    monkeypatch.setattr(mmdiffkd.datasets, 'prepare_fashion_mnist', lambda root: root)
    argv = rest + ['--methods', 'student', 'kd', 'dkd', '--seeds', '0', '1']

    assert bench.main(argv + ['--list']) == 0
    listing = capsys.readouterr().out
    assert calls == []
    assert 'cached    seed 0 kd' in listing and 'TO TRAIN  seed 0 dkd' in listing
    # The estimate comes from the cached KD run (DKD's reference), never invented.
    assert '~100 s wall, ~40 s CPU (median of cached kd runs)' in listing
    assert '1 of 6 runs cached, 5 to train' in listing

    assert bench.main(argv) == 0
    # Seed 0 of every method before seed 1; the cached KD seed 0 is skipped.
    assert calls == [(0, 'student'), (0, 'dkd'), (1, 'student'), (1, 'kd'), (1, 'dkd')]
    table = (tmp_path / 'comparison.md').read_text()
    assert '| Student + KD (logits) | 77.50 | 74.00 |' in table  # cached, then the 4th call
    saved = json.loads((tmp_path / 'comparison.json').read_text())
    assert saved['top1']['kd'] == {'0': 77.5, '1': 74.0} and saved['teacher_top1'] == 90.0

    # Resumed (or re-run), nothing trains again and the table is the same.
    assert bench.main(argv) == 0
    assert len(calls) == 5
    assert (tmp_path / 'comparison.md').read_text() == table


@pytest.mark.slow
def test_end_to_end_on_a_tiny_subset(bench, tmp_path, capsys):
    """Real training (teacher + 2 methods x 2 seeds on 256 images, 1 epoch), then a resume."""
    from mmdiffkd.datasets.fashion_mnist import DEBIAN_DIR
    if not osp.isfile(osp.join(DEBIAN_DIR, 't10k-images-idx3-ubyte.gz')):
        pytest.skip('needs Debian dataset-fashion-mnist (bash tools/setup.sh)')
    argv = _rest(tmp_path) + ['--methods', 'student', 'dkd', '--seeds', '0', '1']
    assert bench.main(argv) == 0
    first = capsys.readouterr().out
    assert '0 of 4 runs cached, 4 to train' in first
    table = (tmp_path / 'comparison.md').read_text()
    assert '4 of 4 runs done' in table and '| Student + DKD (logits) |' in table
    assert bench.main(argv) == 0
    assert '4 of 4 runs cached, 0 to train' in capsys.readouterr().out
    assert (tmp_path / 'comparison.md').read_text() == table


def test_tuning_grid_keys_exist_and_budgets_are_equal(bench, demo):
    grid = bench.tuning.FASHION_MNIST
    assert len({len(trials) for trials in grid.values()}) == 1
    for method, trials in grid.items():
        cfg = demo.read_config(demo.STUDENTS[method])
        for t in trials:
            for key in t.options:
                node = cfg
                for part in key.split('.')[:-1]:
                    node = node[part]
                # a key the config leaves at the loss's default must be a real argument
                assert key.split('.')[-1] in node or node.get('type') == 'DiffKD', (method, key)


def test_options_are_part_of_the_cache_key_and_work_dir(demo, tmp_path):
    args = demo.parse_args(_rest(tmp_path) + ['--split', 'holdout'])
    plain, path, _ = demo.student_cache('kd', args, 'teacher.pth')
    tuned, other, _ = demo.student_cache('kd', args, 'teacher.pth',
                                         {'model.distill_losses.logits.loss.tau': 2.0})
    assert path != other and plain.work_dir != tuned.work_dir
    assert tuned.model.distill_losses.logits.loss.tau == 2.0
    assert plain.val_dataloader.dataset.split == 'holdout'
    assert plain.default_hooks.checkpoint.save_last  # the final weights are kept (publishing)


def test_holdout_needs_a_train_subset_before_it(demo, capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(['--split', 'holdout', '--train-size', '55000'])
    assert '--train-size <= 50000' in capsys.readouterr().err


def test_tuning_report_sorts_trials_by_holdout_score(bench, demo, tmp_path):
    Trial = bench.tuning.Trial
    grid = {'kd': [Trial('a', {'model.distill_losses.logits.loss.tau': 4.0}),
                   Trial('b', {'model.distill_losses.logits.loss.tau': 2.0}),
                   Trial('c', {})]}
    results = {('student', 'alone'): dict(top1=80.0), ('kd', 'a'): dict(top1=82.0),
               ('kd', 'b'): dict(top1=83.5)}
    args = demo.parse_args(_rest(tmp_path))
    text = bench.tuning_report(results, grid, args, 85.0)
    rows = [line for line in text.splitlines() if line.startswith('| ') and 'trial' not in line]
    assert rows[0].startswith('| b (1) | 83.50 | logits.loss.tau=2.0')
    assert rows[1].startswith('| a (1) | 82.00')
    assert 'Student alone: 80.00' in text and '2 of 3 trials done' in text


def test_diffkd_warmup_is_scaled_like_dkds_and_options_are_in_run_units(demo, tmp_path):
    """The shipped DiffKD warm-up is a quarter of the config's schedule: 3562 of 14070
    iterations becomes 160 of the demo's 632; a tuning option is taken as it is."""
    cfg = demo.load_config(demo.STUDENTS['diffkd'], work_dir='w', data_root='d',
                           train_size=10000, epochs=8, seed=0)
    losses = cfg.model.distill_losses
    assert losses.feat.loss.distill_warmup_iters == losses.logits.loss.distill_warmup_iters == 160
    paper = demo.load_config(demo.STUDENTS['diffkd-paper'], work_dir='w', data_root='d',
                             train_size=10000, epochs=8, seed=0)
    assert paper.model.distill_losses.feat.loss.distill_warmup_iters == 0
    tuned = demo.load_config(demo.STUDENTS['diffkd'], work_dir='w', data_root='d',
                             train_size=10000, epochs=8, seed=0,
                             options={'model.distill_losses.feat.loss.distill_warmup_iters': 50})
    assert tuned.model.distill_losses.feat.loss.distill_warmup_iters == 50
