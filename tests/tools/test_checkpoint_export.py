"""tools/export_student.py on a distiller checkpoint written by tools/train.py (toy models).

The task-repo loaders (mmdet init_detector, mmseg init_model, mmpretrain get_model) are tested
in test_checkpoint_export_tasks.py.
"""
import hashlib
import os
import subprocess
import sys

import pytest
import torch
from helpers import load_tool, write_experiment

from mmdiffkd.engine import export_student
from mmdiffkd.utils import CheckpointMismatchError, UnsafeCheckpointError

STUDENT_CONFIG = '''
custom_imports = dict(imports=['tiny_models', 'toy_data'], allow_failed_imports=False)
default_scope = 'mmengine'
model = dict(type='ToyClassifier', width={width},
             data_preprocessor=dict(type='ImgDataPreprocessor', mean=[127.5] * 3,
                                    std=[64.0] * 3))
test_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(type='ToolsToyImages', num=4),
                       sampler=dict(type='DefaultSampler', shuffle=False),
                       collate_fn=dict(type='pseudo_collate'))
test_evaluator = dict(type='ToolsToyAccuracy')
test_cfg = dict()
'''



@pytest.fixture(scope='module')
def distilled(tmp_path_factory):
    directory = tmp_path_factory.mktemp('export')
    sys.path.insert(0, str(directory))
    config = write_experiment(directory)
    load_tool('train').main([config, '--work-dir', str(directory / 'work')])
    for width in (8, 16):
        (directory / f'student{width}.py').write_text(STUDENT_CONFIG.format(width=width))
    yield directory, str(directory / 'work' / 'iter_2.pth')
    sys.path.remove(str(directory))


def test_export_writes_a_plain_student_checkpoint(distilled, tmp_path, capsys):
    directory, ckpt_path = distilled
    final = load_tool('export_student').main(
        [ckpt_path, str(tmp_path / 'toy_student.pth'), '--config', str(directory / 'student8.py')])
    assert capsys.readouterr().out.strip() == final
    digest = hashlib.sha256(open(final, 'rb').read()).hexdigest()
    assert os.path.basename(final) == f'toy_student-{digest[:8]}.pth'
    assert os.listdir(tmp_path) == [os.path.basename(final)]  # no temporary left behind

    exported = torch.load(final, weights_only=True)
    source = torch.load(ckpt_path, weights_only=True)
    assert set(exported) == {'state_dict', 'meta'}
    student = {k[len('student.'):]: v for k, v in source['state_dict'].items()
               if k.startswith('student.')}
    assert exported['state_dict'].keys() == student.keys()
    assert all(torch.equal(exported['state_dict'][k], v) for k, v in student.items())
    meta = exported['meta']
    assert meta['dataset_meta']['classes'] == ('a', 'b', 'c', 'd')
    assert meta['iter'] == 2 and "type='ToyClassifier'" in meta['cfg']
    assert {'optimizer', 'message_hub', 'param_schedulers'} <= set(meta['mmdiffkd']['dropped'])


def test_export_loads_without_mmdiffkd_and_tests_like_the_distiller(distilled, tmp_path):
    directory, ckpt_path = distilled
    final = export_student(ckpt_path, str(tmp_path / 's.pth'))
    # a user without mmdiffkd: plain torch.load(weights_only=True), no allow-list needed
    code = ('import torch; c = torch.load(%r, weights_only=True); '
            'print(len(c["state_dict"]))' % final)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout) == len(torch.load(final, weights_only=True)['state_dict'])
    # the student's own config + the export == the distiller checkpoint, in MMEngine's test loop
    test = load_tool('test')
    plain = test.main([str(directory / 'student8.py'), final, '--work-dir', str(tmp_path / 'a')])
    distiller = test.main([str(directory / 'toy_distill.py'), ckpt_path,
                           '--work-dir', str(tmp_path / 'b')])
    assert plain == distiller


def test_test_tool_refuses_mixed_up_checkpoint_and_config(distilled, tmp_path):
    """MMEngine would load either mix-up non-strictly and test random weights."""
    directory, ckpt_path = distilled
    final = export_student(ckpt_path, str(tmp_path / 's.pth'))
    test = load_tool('test')
    with pytest.raises(ValueError, match='is a distiller checkpoint .* export the student'):
        test.main([str(directory / 'student8.py'), ckpt_path])
    with pytest.raises(ValueError, match='not a distiller checkpoint but the config builds a '
                                         'Distiller'):
        test.main([str(directory / 'toy_distill.py'), final])


def test_export_refuses_a_config_of_another_architecture(distilled, tmp_path):
    directory, ckpt_path = distilled
    with pytest.raises(CheckpointMismatchError, match=r'stem\.0\.weight: checkpoint \[8, 3, 3, 3\]'
                                                      r' vs model \[16, 3, 3, 3\]'):
        export_student(ckpt_path, str(tmp_path / 's.pth'), config=str(directory / 'student16.py'))
    assert os.listdir(tmp_path) == []


def test_export_bad_inputs(distilled, tmp_path):
    directory, ckpt_path = distilled
    plain = tmp_path / 'plain.pth'
    torch.save({'state_dict': {'backbone.conv.weight': torch.zeros(1)}}, plain)
    with pytest.raises(ValueError, match=r"not a distiller checkpoint; its keys start with "
                                       r"\['backbone'\]"):
        export_student(str(plain), str(tmp_path / 'out.pth'))
    with pytest.raises(ValueError, match='must end with .pth'):
        export_student(ckpt_path, str(tmp_path / 'out.ckpt'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        export_student(str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth'))


class _Plant:

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_export_refuses_planted_code(distilled, tmp_path):
    _, ckpt_path = distilled
    source = torch.load(ckpt_path, weights_only=True)
    marker = tmp_path / 'pwned'
    source['meta']['note'] = _Plant(marker)
    evil = tmp_path / 'evil.pth'
    torch.save(source, evil)
    with pytest.raises(UnsafeCheckpointError):
        load_tool('export_student').main([str(evil), str(tmp_path / 'out.pth')])
    assert not marker.exists() and not list(tmp_path.glob('out*'))
