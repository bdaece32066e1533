"""The environment the set-up builds: compiled mmcv ops, the task repos, the version check."""
import importlib

import pytest
import torch

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


def test_version_check_names_wrong_version_and_fix(monkeypatch):
    monkeypatch.setattr(env_check, 'installed_version', _versions(mmdet='2.28.2'))
    monkeypatch.delenv('MMDIFFKD_SKIP_VERSION_CHECK', raising=False)
    with pytest.raises(ImportError) as err:
        env_check.check_environment()
    message = str(err.value)
    assert 'mmdet==2.28.2 is installed' in message
    assert 'mmdet>=3.0.0,<3.4.0' in message and 'tested: mmdet==3.3.0' in message
    assert 'bash tools/setup.sh' in message


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


def test_version_check_can_be_skipped(monkeypatch):
    monkeypatch.setattr(env_check, 'installed_version', _versions(mmcv='1.7.0'))
    monkeypatch.setenv('MMDIFFKD_SKIP_VERSION_CHECK', '1')
    env_check.check_environment()  # no error


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
