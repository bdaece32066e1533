"""benchmarks/bench_scenes.py: which runs count as finished, the students' schedule, the table."""
import importlib.util
import json
import os
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


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
    variant = bench.run_options('seg', 'diffkd-map', 0)
    assert variant[-1] == 'model.distill_losses.logits.loss.kernel_size=3'
    assert spec['runs']['diffkd-map'] == spec['runs']['diffkd']


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
