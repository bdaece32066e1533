"""The environment the set-up builds: compiled mmcv ops, the task repos, the version check."""
import importlib
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import REPO

import mmdiffkd
from mmdiffkd import env_check


def test_mmcv_compiled_op_runs():
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    # The second box overlaps the first with IoU 81/119 > 0.5 and is suppressed.
    assert keep.tolist() == [0, 2]
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7]))


@pytest.mark.parametrize('name', ['mmdet.models', 'mmseg.models', 'mmpretrain.models', 'mmdiffkd'])
def test_task_repos_import(name):
    assert importlib.import_module(name) is not None


def test_version_is_exposed():
    assert mmdiffkd.__version__.count('.') == 2


def _versions(**override):
    versions = {'mmcv': '2.1.0', 'mmengine': '0.10.7', 'mmdet': '3.3.0',
                'mmsegmentation': '1.2.2', 'mmpretrain': '1.2.0', 'mmcv-lite': None}
    versions.update(override)
    return versions.get


def test_version_check_accepts_tested_versions():
    assert env_check.find_problems(_versions(), lambda: True) == []


def test_version_check_warns_naming_wrong_version_tested_versions_and_fix(monkeypatch):
    monkeypatch.setattr(env_check, 'installed_version', _versions(mmdet='2.28.2'))
    monkeypatch.delenv(env_check.STRICT_VARIABLE, raising=False)
    with pytest.warns(env_check.EnvironmentWarning) as record:
        problems = env_check.check_environment()
    assert len(problems) == 1 and len(record) == 1
    message = str(record[0].message)
    assert 'mmdet==2.28.2 is installed' in message
    assert 'mmdet>=3.0.0,<3.4.0' in message and 'tested: mmdet==3.3.0' in message
    assert 'Tested with: torch==2.14.1, mmcv==2.1.0, mmengine==0.10.7' in message
    assert 'bash tools/setup.sh' in message and 'MMDIFFKD_STRICT_ENV=1' in message


def test_strict_mode_refuses_a_mismatch(monkeypatch):
    """CI's mode: tools/run_tests.sh exports MMDIFFKD_STRICT_ENV=1."""
    monkeypatch.setattr(env_check, 'installed_version', _versions(mmcv='1.7.0'))
    monkeypatch.setenv(env_check.STRICT_VARIABLE, '1')
    with pytest.raises(ImportError, match=r'refuses \(MMDIFFKD_STRICT_ENV=1\)[^$]*mmcv==1\.7\.0 '
                                          r'is installed[^$]*Tested with: '):
        env_check.check_environment()
    monkeypatch.setattr(env_check, 'installed_version', _versions())
    assert env_check.check_environment() == []  # nothing to refuse


def test_version_check_missing_required_and_optional():
    problems = env_check.find_problems(_versions(mmengine=None, mmpretrain=None), lambda: True)
    # mmengine is required; mmpretrain is optional (classification-only users skip mmdet, etc.).
    assert problems == ['mmengine is not installed; need mmengine>=0.10.0,<1.0.0 '
                        '(tested: mmengine==0.10.7).']


def test_version_check_detects_mmcv_without_ops():
    problems = env_check.find_problems(_versions(), lambda: False)
    assert len(problems) == 1 and 'without its compiled ops' in problems[0]
    lite = env_check.find_problems(_versions(mmcv=None, **{'mmcv-lite': '2.1.0'}), lambda: False)
    assert any('mmcv-lite is installed' in p for p in lite)


def test_tools_and_ci_run_strict():
    with open(osp.join(REPO, 'tools', 'run_tests.sh')) as f:
        assert 'export MMDIFFKD_STRICT_ENV=1' in f.read()
    with open(osp.join(REPO, '.ci', 'run')) as f:
        assert 'tools/run_tests.sh' in f.read()
    with open(osp.join(REPO, 'tools', 'setup.sh')) as f:  # its checks fail on a mismatch
        assert f.read().count('MMDIFFKD_STRICT_ENV=1 "$VENV/bin/python"') == 2


# A fresh interpreter imports the whole package with a mismatched mmdet (a fake installed
# distribution ahead of the real one on sys.path), counting MMEngine scheme registrations.
IMPORT_PROBE = textwrap.dedent('''
    import json, warnings
    from mmengine.runner.checkpoint import CheckpointLoader
    calls = []
    register = CheckpointLoader.register_scheme.__func__
    CheckpointLoader.register_scheme = classmethod(
        lambda cls, *a, **k: (calls.append(a[0]), register(cls, *a, **k))[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        import mmdiffkd, mmdiffkd.datasets, mmdiffkd.engine, mmdiffkd.models  # noqa
    loader = CheckpointLoader._get_checkpoint_loader('https://x.org/a.pth')
    print(json.dumps(dict(warnings=[f'{w.category.__name__}: {w.message}' for w in caught],
                          registered=len(calls), url_loader=loader.__module__)))
''')


def test_mismatched_version_warns_and_imports_and_loaders_are_installed_once(tmp_path):
    info = tmp_path / 'mmdet-2.28.2.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: mmdet\nVersion: 2.28.2\n')
    env = {k: v for k, v in os.environ.items() if k != env_check.STRICT_VARIABLE}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', IMPORT_PROBE], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    mismatch = [w for w in out['warnings'] if w.startswith('EnvironmentWarning')]
    assert len(mismatch) == 1 and 'mmdet==2.28.2 is installed' in mismatch[0]
    assert 'Tested with: ' in mismatch[0] and 'mmdet==3.3.0' in mismatch[0]
    # importing every subpackage registers MMEngine's schemes once, through the entry point
    from mmdiffkd.utils.checkpoint import SAFE_SCHEMES
    assert out['registered'] == len(SAFE_SCHEMES)
    assert out['url_loader'] == 'mmdiffkd.utils.checkpoint'


def test_registries_are_children_of_mmengine():
    from mmengine.registry import MODELS as ROOT_MODELS

    from mmdiffkd.registry import MODELS
    assert MODELS.scope == 'mmdiffkd' and MODELS.parent is ROOT_MODELS
    assert ROOT_MODELS.children['mmdiffkd'] is MODELS


def test_default_scope_mmdiffkd_finds_mmengine_types():
    from mmengine.registry import DefaultScope

    from mmdiffkd.registry import OPTIM_WRAPPERS, PARAM_SCHEDULERS, METRICS
    with DefaultScope.overwrite_default_scope('mmdiffkd'):
        assert OPTIM_WRAPPERS.get('OptimWrapper').__name__ == 'OptimWrapper'
        assert PARAM_SCHEDULERS.get('LinearLR').__name__ == 'LinearLR'
        assert METRICS.get('mmdet.CocoMetric').__name__ == 'CocoMetric'


def test_import_turns_on_safe_checkpoint_loading(tmp_path):
    import pickle

    class Trap:
        def __reduce__(self):
            return (open, (str(tmp_path / 'ran'), 'w'))

    path = tmp_path / 'trap.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': {}, 'x': Trap()}, f)
    from mmengine.runner.checkpoint import CheckpointLoader
    with pytest.raises(Exception):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not (tmp_path / 'ran').exists()
