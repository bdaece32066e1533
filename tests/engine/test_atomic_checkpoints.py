"""Checkpoints are complete or absent: atomic writes (temporary file, fsync, rename) in the
Runner's checkpoint hook, last_checkpoint, published and exported students.

The SIGKILL tests kill a real writer process while it writes (MMEngine's in-place
``LocalBackend.put`` is the control: the same kill leaves a truncated file there).
"""
import glob
import hashlib
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn as nn
from helpers import REPO
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import BaseModel
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.runner import Runner

from mmdiffkd.engine import AtomicCheckpointHook, atomic_open, atomic_torch_save
from mmdiffkd.engine.atomic import remove_stale_temporaries, temporary_name_pattern

MB = 1 << 20

WRITER = '''
import importlib.util, sys
from mmengine.fileio import LocalBackend
spec = importlib.util.spec_from_file_location('atomic', sys.argv[4])  # not all of mmdiffkd
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
AtomicLocalBackend = atomic.AtomicLocalBackend
backend = AtomicLocalBackend() if sys.argv[1] == 'atomic' else LocalBackend()
path, size = sys.argv[2], int(sys.argv[3])
i = 0
while True:
    i += 1
    byte = (i % 250) + 1
    backend.put(bytes([byte]) * size, path)   # version i: `size` copies of one byte
    print(i, flush=True)
'''


def _kill_while_writing(tmp_path, kind, size=32 * MB, timeout=60):
    """Start a writer looping over versions of one file; SIGKILL it mid-write. Returns
    (target path, whether the kill landed mid-write)."""
    target = tmp_path / kind / 'iter_1.pth'
    target.parent.mkdir()
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    atomic_py = osp.join(REPO, 'mmdiffkd', 'engine', 'atomic.py')
    proc = subprocess.Popen([sys.executable, '-c', WRITER, kind, str(target), str(size),
                             atomic_py],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pattern = temporary_name_pattern(target)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if kind == 'atomic':
                # a temporary file exists only while a version is being written
                mid_write = target.exists() and bool(glob.glob(pattern))
            else:
                mid_write = target.exists() and 0 < target.stat().st_size < size
            if mid_write:
                proc.send_signal(signal.SIGKILL)
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.0002)
        else:
            pytest.fail(f'{kind} writer never observed mid-write in {timeout} s')
    finally:
        proc.kill()
        proc.wait()
    return target, pattern


def _complete(path, size):
    data = path.read_bytes()
    return len(data) == size and data == data[:1] * size


@pytest.mark.parametrize('kind', ['atomic', 'plain'])
def test_sigkill_mid_write_leaves_the_previous_complete_file(tmp_path, kind):
    size = 32 * MB
    target, pattern = _kill_while_writing(tmp_path, kind, size)
    if kind == 'plain':  # the control: MMEngine's LocalBackend.put writes in place
        assert not _complete(target, size)
        return
    leftovers = glob.glob(pattern)
    assert leftovers, 'the kill should have landed while a temporary file existed'
    assert _complete(target, size)  # the previous version, whole
    assert remove_stale_temporaries(str(target.parent)) == leftovers
    assert sorted(os.listdir(target.parent)) == ['iter_1.pth']


def test_atomic_open_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / 'a.pth'
    atomic_torch_save({'w': torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match='boom'):
        with atomic_open(path) as f:
            f.write(b'PK\x03\x04half a checkpoint')
            raise RuntimeError('boom')
    assert torch.equal(torch.load(path, weights_only=True)['w'], torch.ones(3))
    assert os.listdir(tmp_path) == ['a.pth']  # no temporary file left
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # as open() would


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- the Runner's checkpoint hook ---------------------------------------------------------------

class Net(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, inputs, target=None, mode='tensor'):
        out = self.fc(inputs).squeeze(-1)
        return dict(loss=((out - target)**2).mean()) if mode == 'loss' else out


class Data(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((4, ), float(i)), target=torch.tensor(float(i % 2)))


@ROOT_HOOKS.register_module(force=True)
class CrashInSaveHook(Hook):
    """Raises inside ``Runner.save_checkpoint`` at iteration ``at``: a crash mid-save."""

    def __init__(self, at):
        self.at = at

    def before_save_checkpoint(self, runner, checkpoint):
        if runner.iter + 1 == self.at:
            raise KeyboardInterrupt('crash while saving')


def run(work_dir, hook_type, iters=4, crash_at=None, **hook_args):
    hooks = [dict(type='CrashInSaveHook', at=crash_at)] if crash_at else []
    runner = Runner(
        model=Net(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=Data(), batch_size=4, collate_fn=dict(
            type='default_collate'), sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        default_hooks=dict(checkpoint=dict(type=hook_type, interval=1, by_epoch=False,
                                           **hook_args)),
        custom_hooks=hooks, default_scope='mmengine', log_level='WARNING')
    runner.train()
    return runner


def test_hook_writes_atomically_and_names_only_complete_checkpoints(tmp_path):
    work = tmp_path / 'w'
    work.mkdir()
    stale = work / '.iter_9.pth.0a1b2c3d.tmp'  # left by a killed run
    stale.write_bytes(b'PK\x03\x04 half')
    other = work / '.notes.txt.tmp'  # not ours: kept
    other.write_text('x')
    runner = run(work, 'mmdiffkd.AtomicCheckpointHook', iters=3)
    hook = next(h for h in runner.hooks if isinstance(h, AtomicCheckpointHook))
    assert hook.backend_args == dict(backend='mmdiffkd_atomic_local')
    assert not stale.exists() and other.exists()
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_3.pth')
    assert torch.load(work / 'iter_3.pth', weights_only=True)['meta']['iter'] == 3
    assert not [n for n in os.listdir(work) if n.endswith('.tmp') and n != other.name]


@pytest.mark.parametrize('hook_type', ['mmdiffkd.AtomicCheckpointHook', 'CheckpointHook'])
def test_max_keep_one_survives_a_crash_during_the_save(tmp_path, hook_type):
    """MMEngine deletes the old checkpoint before writing the new one: with max_keep_ckpts=1
    a crash during the write leaves nothing to resume from. The atomic hook deletes after."""
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, hook_type, iters=4, crash_at=3, max_keep_ckpts=1)
    pth = sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth'))
    if hook_type == 'CheckpointHook':  # the control
        assert pth == []
        return
    assert pth == ['iter_2.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_2.pth')
    # the next run resumes from it and prunes as MMEngine would
    runner = run(tmp_path, 'mmdiffkd.AtomicCheckpointHook', iters=4, max_keep_ckpts=1)
    assert runner.iter == 4
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) == ['iter_4.pth']


def test_same_behaviour_as_checkpoint_hook(tmp_path):
    """Same files and the same resume information as MMEngine's hook."""
    run(tmp_path / 'a', 'mmdiffkd.AtomicCheckpointHook', iters=3, max_keep_ckpts=2)
    run(tmp_path / 'b', 'CheckpointHook', iters=3, max_keep_ckpts=2)
    names = [sorted(n for n in os.listdir(tmp_path / d) if not n[0].isdigit())
             for d in 'ab']
    assert names[0] == names[1] == ['iter_2.pth', 'iter_3.pth', 'last_checkpoint']
    a = torch.load(tmp_path / 'a' / 'iter_3.pth', weights_only=True)
    b = torch.load(tmp_path / 'b' / 'iter_3.pth', weights_only=True)
    assert a['message_hub']['runtime_info']['keep_ckpt_ids'] == \
        b['message_hub']['runtime_info']['keep_ckpt_ids'] == [2, 3]
    assert a['message_hub']['runtime_info']['last_ckpt'] == str(tmp_path / 'a' / 'iter_3.pth')


def test_published_checkpoint_is_named_by_its_file_hash(tmp_path):
    run(tmp_path, 'mmdiffkd.AtomicCheckpointHook', iters=2, published_keys=['meta',
                                                                          'state_dict'])
    published = [n for n in os.listdir(tmp_path) if n.startswith('iter_2-')]
    assert len(published) == 1
    data = (tmp_path / published[0]).read_bytes()
    assert published[0] == f'iter_2-{hashlib.sha256(data).hexdigest()[:8]}.pth'
    assert set(torch.load(tmp_path / published[0], weights_only=True)) == {'meta', 'state_dict'}


def test_export_is_atomic(tmp_path, monkeypatch):
    from mmdiffkd.engine import export_student
    src = tmp_path / 'distiller.pth'
    torch.save({'state_dict': {'student.w': torch.ones(2), 'teacher.w': torch.ones(2)}}, src)

    def no_disk(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', no_disk)
    with pytest.raises(OSError, match='No space left'):
        export_student(str(src), str(tmp_path / 'out' / 'student.pth'))
    assert os.listdir(tmp_path / 'out') == []  # neither a half file nor a temporary one
    monkeypatch.undo()
    final = export_student(str(src), str(tmp_path / 'out' / 'student.pth'))
    assert osp.basename(final).startswith('student-') and os.listdir(tmp_path / 'out') == [
        osp.basename(final)]


def test_tools_train_uses_the_atomic_hook_without_config_changes():
    from mmengine.config import Config

    from mmdiffkd.engine import use_safe_training
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=5)),
                      optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))))
    use_safe_training(cfg)
    assert cfg.default_hooks.checkpoint == dict(type='mmdiffkd.AtomicCheckpointHook',
                                                interval=5)
    bare = Config(dict())  # the Runner's default CheckpointHook(interval=1)
    use_safe_training(bare)
    assert bare.default_hooks.checkpoint.type == 'mmdiffkd.AtomicCheckpointHook'
    off = Config(dict(default_hooks=dict(checkpoint=None)))
    use_safe_training(off)
    assert off.default_hooks.checkpoint is None
    assert issubclass(AtomicCheckpointHook, CheckpointHook)
