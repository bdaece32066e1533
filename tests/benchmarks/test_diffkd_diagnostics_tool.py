"""benchmarks/diffkd_diagnostics.py: reads a DiffKD run's log and summarises the diagnostics."""
import importlib.util
import json
import os
import os.path as osp

import pytest
from helpers import REPO



@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location(
        'diffkd_diagnostics', osp.join(REPO, 'benchmarks', 'diffkd_diagnostics.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(work_dir, stamp, rows):
    vis = osp.join(work_dir, stamp, 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')


def test_summary_first_and_last_tenth_across_a_resume(tool, tmp_path, capsys):
    rows = [dict(lr=0.1, iter=i, step=i, loss=1.0, **{'feat.gamma': i / 20,
                                                       'feat.aligned_mse': 2.0,
                                                       'feat.denoise_gain': 1.0 + i})
            for i in range(1, 11)]
    _run(str(tmp_path / 'r'), '20261130_000000', rows[:6] + [{'accuracy/top1': 80.0, 'step': 1}])
    _run(str(tmp_path / 'r'), '20261130_010000', rows[5:])  # resumed: iteration 6 logged twice
    series = tool.read_series(str(tmp_path / 'r'))
    assert list(series['gamma']['feat']) == [i / 20 for i in range(1, 11)]
    summ = tool.summary(series)
    assert summ['feat']['gamma'] == pytest.approx((0.05, 0.5))
    assert summ['feat']['denoise_gain'] == pytest.approx((2.0, 11.0))
    assert tool.main([str(tmp_path / 'r'), '--plot', str(tmp_path / 'c.png')]) == 0
    out = capsys.readouterr().out
    assert '| r | feat | 0.05 → 0.5 | 2 → 2 | 2 → 11 |' in out
    assert (tmp_path / 'c.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_errors_name_the_work_dir(tool, tmp_path):
    with pytest.raises(FileNotFoundError, match='no <timestamp>/vis_data/scalars.json'):
        tool.read_series(str(tmp_path))
    _run(str(tmp_path / 'kd'), '20261130_000000', [dict(lr=0.1, iter=1, loss_kd=1.0)])
    with pytest.raises(ValueError, match='no DiffKD diagnostics'):
        tool.read_series(str(tmp_path / 'kd'))
