"""benchmarks/bench_scenes.py: which runs count as finished, the students' schedule, the table."""
import importlib.util
import json
import os
import os.path as osp

import pytest
from helpers import REPO



@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location(
        'bench_scenes', osp.join(REPO, 'benchmarks', 'bench_scenes.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_run(work_dir, rows):
    """A tools/train.py work dir as MMEngine leaves it: <timestamp>/vis_data/scalars.json."""
    vis = osp.join(work_dir, '20261122_060000', 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')


def test_every_run_has_a_config(bench):
    for task, spec in bench.TASKS.items():
        for run, name in spec['runs'].items():
            assert osp.isfile(osp.join(bench.CONFIGS, name)), (task, run, name)


def test_collect_needs_the_val_at_the_students_last_epoch(bench, tmp_path):
    spec, config = bench.TASKS['det'], osp.join(bench.CONFIGS, bench.TASKS['det']['runs']['student'])
    options = ['randomness.seed=0', *spec['student_options']]  # 3 of the config's 6 epochs
    mid = dict(step=2, **{'coco/bbox_mAP': 0.01})
    _fake_run(str(tmp_path / 'a'), [mid])
    assert bench.collect(str(tmp_path / 'a'), spec, 'student', 0, config, options) is None
    final = {'step': 3, 'coco/bbox_mAP': 0.029, 'coco/bbox_mAP_50': 0.07}
    _fake_run(str(tmp_path / 'b'), [mid, {'loss': 1.0, 'step': 3}, final])
    result = bench.collect(str(tmp_path / 'b'), spec, 'student', 0, config, options)
    assert result['metrics'] == {'coco/bbox_mAP': 0.029, 'coco/bbox_mAP_50': 0.07}
    assert result['options'] == options and result['wall_s'] >= 0
    # the teacher's own schedule (6 epochs) does not accept a val at epoch 3
    teacher = osp.join(bench.CONFIGS, spec['runs']['teacher'])
    assert bench.collect(str(tmp_path / 'b'), spec, 'teacher', 0, teacher, ['randomness.seed=0']) is None


def test_run_options_seed_schedule_and_variant(bench):
    spec = bench.TASKS['seg']
    assert bench.run_options('seg', 'teacher', 1) == ['randomness.seed=1']
    assert bench.run_options('seg', 'diffkd', 0, ['a=1']) == [
        'randomness.seed=0', 'a=1', *spec['student_options']]
    variant = bench.run_options('seg', 'diffkd-pixel', 0)
    assert variant[-1] == 'model.distill_losses.logits.loss.kernel_size=1'
    assert spec['runs']['diffkd-pixel'] == spec['runs']['diffkd']


def test_table_means_and_gap_closed(bench):
    def r(run, seed, m):
        return dict(run=run, seed=seed, wall_s=600.0, metrics={'mIoU': m, 'aAcc': 90.0})
    results = [r('teacher', 0, 50.0), r('student', 0, 20.0), r('student', 1, 30.0),
               r('diffkd', 0, 40.0), r('diffkd', 1, 40.0)]
    rows = bench.table('seg', results).splitlines()
    student = next(x for x in rows if 'alone' in x)
    diffkd = next(x for x in rows if 'DiffKD' in x)
    assert '| 25.0 ± 7.1 |' in student  # mean, sample std of 20 and 30
    assert '| 40.0 ± 0.0 |' in diffkd and '| 60% |' in diffkd  # (40 - 25) / (50 - 25)
    assert not any('CWD' in x for x in rows)  # runs without results are left out


def test_unknown_run_is_refused_with_the_valid_ones(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(['--task', 'det', '--runs', 'diffusion'])
    err = capsys.readouterr().err
    assert "unknown runs ['diffusion']" in err and "'diffkd'" in err and "'pkd'" in err


def test_distilled_run_without_a_teacher_says_to_train_it(bench, tmp_path):
    with pytest.raises(FileNotFoundError, match='train the teacher first'):
        bench.main(['--task', 'det', '--runs', 'diffkd', '--work-root', str(tmp_path)])


def test_holdout_options_and_trials(bench):
    """Tuning runs train on the fit part and score on the hold-out part; a trial's settings
    come last and parse back to their values."""
    from mmengine.config import DictAction
    spec = bench.TASKS['det']
    trial = bench.tuning.Trial('t', {'model.distill_losses.fpn.weight': 5.0,
                                     'model.distill_losses.fpn.loss.distill_updates_diffusion':
                                         False, 'x.milestones': [2, 3]})
    options = bench.run_options('det', 'diffkd', 0, trial=trial, split='holdout')
    assert options[:len(spec['student_options']) + 1] == ['randomness.seed=0',
                                                          *spec['student_options']]
    assert 'train_dataloader.dataset.ann_file=annotations/train_fit.json' in options
    assert any('val_evaluator.ann_file=' in o and o.endswith('train_holdout.json')
               for o in options)
    assert all(o.startswith('+') for o in options[-3:])  # a trial may set a default's key
    parsed = dict(o[1:].split('=', 1) for o in options[-3:])
    assert DictAction._parse_iterable(parsed['model.distill_losses.fpn.weight']) == 5.0
    assert DictAction._parse_iterable(
        parsed['model.distill_losses.fpn.loss.distill_updates_diffusion']) is False
    assert DictAction._parse_iterable(parsed['x.milestones']) == [2, 3]
    assert bench.run_name('diffkd', 0, trial, 'holdout') == 'diffkd-t_seed0_holdout'
    assert bench.run_name('diffkd', 1) == 'diffkd_seed1'


def test_holdout_options_point_at_files_the_generator_writes(bench, tmp_path):
    """The hold-out files exist after make_scenes and split the train scenes 80 / 20."""
    from mmdiffkd.datasets.scenes import SceneSettings, generate_scenes
    from mmdiffkd.datasets.fashion_mnist import DEBIAN_DIR
    if not osp.isfile(osp.join(DEBIAN_DIR, 'train-images-idx3-ubyte.gz')):
        pytest.skip('needs Debian dataset-fashion-mnist (bash tools/setup.sh)')
    out = str(tmp_path / 'scenes')
    generate_scenes(out, SceneSettings(num_train=10, num_val=2, size=64, min_scale=16,
                                       max_scale=32))
    for task in ('det', 'seg'):
        for option in bench.TASKS[task]['holdout_options']:
            value = option.split('=', 1)[1]
            if value.endswith(('.json', '.txt')):
                assert osp.isfile(osp.join(out, value.replace(bench.HOLDOUT_DIR, ''))), option
    with open(osp.join(out, 'annotations', 'train.json')) as f:
        ids = [im['id'] for im in json.load(f)['images']]
    parts = {}
    for part in ('train_fit', 'train_holdout'):
        with open(osp.join(out, 'annotations', f'{part}.json')) as f:
            coco = json.load(f)
        parts[part] = [im['id'] for im in coco['images']]
        assert {a['image_id'] for a in coco['annotations']} <= set(parts[part])
        with open(osp.join(out, 'splits', f'{part}.txt')) as f:
            names = f.read().split()
        assert names == [f'{i - 1:06d}' for i in parts[part]]
    assert parts['train_fit'] == ids[:8] and parts['train_holdout'] == ids[8:]


def test_tuning_runs_and_shards(bench):
    Trial = bench.tuning.Trial
    grid = {'a': [Trial('a1', {}), Trial('a2', {})], 'b': [Trial('b1', {})]}
    runs = bench.tuning.tuning_runs(grid)
    assert [(m, t and t.name) for m, t in runs] == [('student', None), ('a', 'a1'),
                                                     ('b', 'b1'), ('a', 'a2')]
    one, two = (bench.tuning.shard_filter(runs, (i, 2)) for i in (1, 2))
    assert one + two != runs and sorted(map(str, one + two)) == sorted(map(str, runs))
    assert bench.tuning.parse_shard('2/3') == (2, 3)
    with pytest.raises(Exception, match='1 <= i <= n'):
        bench.tuning.parse_shard('3/2')
    expanded = bench.tuning.expand({'k': 1, 'j': 2}, [Trial('x', {'k': 5})])
    assert expanded[0].options == {'k': 5, 'j': 2}


def test_every_tuning_grid_has_equal_budgets_and_real_keys(bench):
    """Equal number of trials for DiffKD and its baseline; every key exists in the config, or
    is an argument of the loss it sets."""
    import inspect

    from mmengine.config import Config

    from mmdiffkd.registry import MODELS
    for task, grid in bench.tuning.SCENES.items():
        sizes = {run: len(trials) for run, trials in grid.items()}
        assert len(set(sizes.values())) == 1, (task, sizes)
        for run, trials in grid.items():
            cfg = Config.fromfile(osp.join(bench.CONFIGS, bench.TASKS[task]['runs'][run]))
            for t in trials:
                for key in t.options:
                    node = cfg
                    for part in key.split('.')[:-1]:
                        node = node[part]
                    leaf = key.split('.')[-1]
                    if leaf not in node:
                        loss = MODELS.get(node['type'])
                        assert leaf in inspect.signature(loss.__init__).parameters, (run, key)


def test_results_arithmetic_is_one_place():
    """Benchmarks, demo and model zoo share mmdiffkd.results: one answer for one seed."""
    from mmdiffkd.results import format_mean_std, gap_closed, mean_std
    assert gap_closed(85.0, 80.0, 90.0) == 50.0
    assert gap_closed(85.0, 80.0, 80.0) != gap_closed(85.0, 80.0, 80.0)  # NaN: no gap
    m, sd = mean_std([1.0, None, float('nan'), 3.0])
    assert (m, round(sd, 6)) == (2.0, round(2 ** 0.5, 6))
    assert format_mean_std([80.0]) == '80.00 (1 seed)'
    assert format_mean_std([]) == '—' and format_mean_std([1.0, 3.0], 1) == '2.0 ± 1.4'


def test_tune_collects_finished_trials_into_one_table(bench, tmp_path):
    """--tune reuses finished runs (result.json) of every shard and ranks each method's trials."""
    Trial = bench.tuning.Trial
    grid = {'pkd': [Trial('w10', {'model.distill_losses.fpn.weight': 10.0}),
                    Trial('w3', {'model.distill_losses.fpn.weight': 3.0})],
            'diffkd': [Trial('paper', {})]}
    scores = {'student': 0.03, 'pkd-w10': 0.10, 'pkd-w3': 0.12, 'diffkd-paper': 0.08}
    for name, value in scores.items():
        run_dir = tmp_path / 'det' / f'{name}_seed0_holdout'
        run_dir.mkdir(parents=True)
        (run_dir / 'result.json').write_text(json.dumps(dict(
            run=name.split('-')[0], seed=0, wall_s=60.0, metrics={'coco/bbox_mAP': value})))
    args = bench.argparse.Namespace(task='det', shard=(2, 2), work_root=str(tmp_path),
                                    force=False, cfg_options=[], threads=1, teacher_seed=0)
    text = bench.tune(args, grid)
    assert 'Student alone: 3.0.' in text
    rows = [line for line in text.splitlines() if line.startswith('| w') or
            line.startswith('| paper')]
    assert rows[0].startswith('| w3 (1) | 12.0 |') and rows[1].startswith('| w10 (1) | 10.0 |')
    assert rows[2].startswith('| paper (1) | 8.0 |')
    assert (tmp_path / 'det_tuning.md').read_text().strip() == text.strip()


def test_full_schedule_keeps_the_configs_schedule(bench):
    spec = bench.TASKS['det']
    half = bench.run_options('det', 'pkd', 0)
    full = bench.run_options('det', 'pkd', 0, full=True)
    assert set(spec['student_options']) <= set(half)
    assert not set(spec['student_options']) & set(full)
    assert bench.run_name('pkd', 0, full=True) == 'pkd_seed0_full'
    assert bench.run_name('teacher', 0, full=True) == 'teacher_seed0'  # one teacher
