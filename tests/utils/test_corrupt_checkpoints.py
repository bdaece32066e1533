"""A truncated, damaged or non-torch checkpoint given to --resume, load_from or a teacher's
``checkpoint=``: a clear error naming the file and what is wrong, no pickle traceback, nothing
executed, nothing written."""
import os
import zipfile

import pytest
import torch
import torch.nn as nn
from helpers import load_tool, write_experiment
from mmengine.registry import MODELS as ROOT_MODELS
from tiny_models import save_weights, toy_model

from mmdiffkd.utils import CorruptCheckpointError, load_checkpoint_file, resume_checkpoint_in
from mmdiffkd.utils.integrity import checkpoint_problem


class TouchOnLoad:

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _good(path, **extra):
    torch.save({'state_dict': nn.Linear(64, 64).state_dict(), **extra}, path)
    return path


def _damage(path, kind):
    data = path.read_bytes()
    if kind == 'truncated':
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'last_bytes_missing':
        path.write_bytes(data[:-10])
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'html':
        path.write_text('<!DOCTYPE html><html><body>404 Not Found</body></html>')
    elif kind == 'lfs':
        path.write_text('version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n')
    elif kind == 'flipped_byte':  # a weight's byte changed after writing (disk / copy error)
        damaged = bytearray(data)
        damaged[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(damaged))
    elif kind == 'zip_not_torch':
        path.unlink()
        with zipfile.ZipFile(path, 'w') as z:
            z.writestr('readme.txt', 'hello')
    elif kind == 'legacy_truncated':
        torch.save({'w': torch.ones(5000)}, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:3000])
    return path


EXPECTED = {
    'truncated': 'is truncated or damaged: a zip archive',
    'last_bytes_missing': 'without its index at the end',
    'empty': 'is empty (0 bytes)',
    'html': 'is an HTML/XML document',
    'lfs': 'is a Git LFS pointer',
    'flipped_byte': 'the CRC-32 of its member',
    'zip_not_torch': 'no data.pkl in it',
    'legacy_truncated': 'is truncated',
}


@pytest.mark.parametrize('kind', sorted(EXPECTED))
def test_damaged_file_gets_a_clear_error(tmp_path, kind):
    path = _damage(_good(tmp_path / 'ckpt.pth'), kind)
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint_file(str(path))
    message = str(info.value)
    assert str(path) in message and EXPECTED[kind] in message, message
    assert 'Nothing was loaded' in message
    # no chained pickle / miniz traceback under it
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_torch_alone_loads_a_flipped_byte_silently(tmp_path):
    """Why the CRC check: torch does not verify the CRC-32 it stores."""
    path = _good(tmp_path / 'ckpt.pth')
    before = torch.load(path, weights_only=True)['state_dict']['weight']
    _damage(path, 'flipped_byte')
    after = torch.load(path, weights_only=True)['state_dict']['weight']
    assert not torch.equal(before, after)
    assert checkpoint_problem(str(path)) is not None


def test_truncated_planted_file_runs_nothing(tmp_path):
    marker = tmp_path / 'pwned'
    path = _good(tmp_path / 'evil.pth', meta={'x': TouchOnLoad(marker)})
    _damage(path, 'truncated')
    with pytest.raises(CorruptCheckpointError):
        load_checkpoint_file(str(path))
    assert not marker.exists()


def test_teacher_checkpoint_damaged(tmp_path):
    import mmdiffkd.models  # noqa: F401
    from mmdiffkd.registry import MODELS
    path = tmp_path / 't.pth'
    save_weights(ROOT_MODELS.build(toy_model(16)), str(path))
    _damage(path, 'truncated')
    with pytest.raises(CorruptCheckpointError, match=f"'{path}' is truncated"):
        MODELS.build(dict(type='mmdiffkd.Distiller', student=toy_model(8),
                          teacher=dict(config=toy_model(16), checkpoint=str(path)),
                          distill_losses=dict(kd=dict(loss=dict(type='MSE'), student='fc',
                                                      teacher='fc'))))


def test_runner_resume_of_a_damaged_file(tmp_path):
    from mmengine.runner import Runner
    from tiny_models import toy_loader
    runner = Runner(model=toy_model(8), work_dir=str(tmp_path / 'w'),
                    train_dataloader=toy_loader(), train_cfg=dict(by_epoch=False, max_iters=1),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                    default_scope='mmengine', log_level='WARNING')
    path = _damage(_good(tmp_path / 'r.pth'), 'last_bytes_missing')
    with pytest.raises(CorruptCheckpointError, match='r.pth'):
        runner.resume(str(path))


# ---- through tools/train.py: refused before anything is written --------------------------------

@pytest.fixture
def experiment(tmp_path):
    import sys
    sys.path.insert(0, str(tmp_path))
    yield tmp_path, write_experiment(tmp_path)
    sys.path.remove(str(tmp_path))


def _work_dir_with(work, damaged_last=True):
    work.mkdir()
    older = _good(work / 'iter_2.pth')
    newest = _good(work / 'iter_4.pth')
    os.utime(older, (1, 1))
    best = _good(work / 'best_acc_iter_3.pth')  # no optimizer state: never proposed
    os.utime(best, (2, 2))
    if damaged_last:
        _damage(newest, 'truncated')
    (work / 'last_checkpoint').write_text(str(newest))
    return older, newest


@pytest.mark.parametrize('how', [['--resume'], ['--cfg-options', 'resume=True']])
def test_auto_resume_refuses_a_truncated_last_checkpoint(experiment, how):
    directory, config = experiment
    work = directory / 'work'
    older, newest = _work_dir_with(work)
    before = sorted(os.listdir(work))
    with pytest.raises(CorruptCheckpointError) as info:
        load_tool('train').main([config, '--work-dir', str(work), *how])
    message = str(info.value)
    assert f"names '{newest}', which is truncated" in message
    assert f'`--resume {older}`' in message  # the newest complete one, not the best_*
    assert sorted(os.listdir(work)) == before  # no log dir, nothing written


def test_resume_checkpoint_in(tmp_path):
    assert resume_checkpoint_in(str(tmp_path)) is None  # a first run: start from scratch
    older, newest = _work_dir_with(tmp_path / 'ok', damaged_last=False)
    assert resume_checkpoint_in(str(tmp_path / 'ok')) == str(newest)
    (tmp_path / 'ok' / 'last_checkpoint').write_text('')
    with pytest.raises(CorruptCheckpointError, match='last_checkpoint is empty'):
        resume_checkpoint_in(str(tmp_path / 'ok'))
    newest.unlink()
    older.unlink()
    (tmp_path / 'ok' / 'last_checkpoint').write_text(str(newest))
    with pytest.raises(CorruptCheckpointError, match='does not exist. There is no complete'):
        resume_checkpoint_in(str(tmp_path / 'ok'))


@pytest.mark.parametrize('how', ['--resume', 'load_from'])
def test_explicit_damaged_checkpoint_is_refused_before_the_work_dir(experiment, how):
    directory, config = experiment
    path = _damage(_good(directory / 'given.pth'), 'html')
    work = directory / 'never'
    args = ([config, '--work-dir', str(work)] +
            (['--resume', str(path)] if how == '--resume' else
             ['--cfg-options', f'load_from={path}']))
    with pytest.raises(CorruptCheckpointError, match=f"{how} '{path}' is an HTML"):
        load_tool('train').main(args)
    assert not work.exists()
