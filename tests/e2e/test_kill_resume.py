"""``kill -9`` of a real ``tools/train.py`` (one process, and 2-process DDP through
``tools/dist_train.sh``), while a checkpoint is being written and at random points, then
``--resume``: training continues from the last complete checkpoint, and its final weights and
optimizer state equal those of a run resumed cleanly from that checkpoint.

Checkpoints are padded to 32 MiB (``PadCheckpointHook``) so that a write takes long enough to be
caught: the test kills as soon as the hidden temporary file of a checkpoint appears, and checks
afterwards that the temporary file was still there (the kill did land mid-write).
"""
import glob
import os
import os.path as osp
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from fault_helpers import write_diffkd_experiment
from helpers import REPO, TESTS_DIR, free_port

from mmdiffkd.utils.integrity import checkpoint_problem

MAX_ITERS = 8
SEED = int(os.environ.get('MMDIFFKD_KILL_SEED', time.time_ns() % 10000))


def _env(directory):
    return dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable, PORT=str(free_port()),
                PYTHONPATH=os.pathsep.join([REPO, TESTS_DIR, str(directory)]))


def _command(config, work, gpus, *extra):
    if gpus:
        return ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, str(gpus),
                '--work-dir', str(work), *extra]
    return [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', str(work),
            *extra]


def start(config, work, gpus=0, *extra):
    log = open(osp.join(osp.dirname(str(work)), f'log_{time.time_ns()}.txt'), 'w+')
    proc = subprocess.Popen(_command(config, work, gpus, *extra), cwd=osp.dirname(config),
                            env=_env(osp.dirname(config)), stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def output(proc):
    proc.log.seek(0)
    return proc.log.read()


def process_tree(pid):
    """``pid`` and its descendants (from /proc: torchrun starts its workers in their own
    sessions, so killing the launcher's process group would leave them running)."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree = [pid]
    for parent in tree:
        tree.extend(children.get(parent, []))
    return tree


def kill(proc):
    """SIGKILL the launcher and every process under it at once, as a lost node would."""
    for pid in process_tree(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def run(config, work, gpus=0, *extra, timeout=400):
    proc = start(config, work, gpus, *extra)
    try:
        proc.wait(timeout=timeout)
    finally:
        kill(proc)
    text = output(proc)
    assert proc.returncode == 0, text[-4000:]
    return text


def temporaries(work):
    return glob.glob(osp.join(str(work), '.*.pth.*.tmp'))


def checkpoints(work):
    return sorted(glob.glob(osp.join(str(work), 'iter_*.pth')))


def wait_for(proc, condition, what, timeout=300, poll=0.0005):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f'training ended before {what} (seed {SEED}):\n{output(proc)[-3000:]}')
        time.sleep(poll)
    kill(proc)
    pytest.fail(f'no {what} within {timeout} s (seed {SEED}):\n{output(proc)[-3000:]}')


def saved_iter(work):
    """The iteration of the checkpoint last_checkpoint names (0 if none)."""
    try:
        named = (work / 'last_checkpoint').read_text().strip()
    except FileNotFoundError:
        return 0
    return int(osp.basename(named)[len('iter_'):-len('.pth')]) if named else 0


def kill_mid_write(config, work, gpus, after, *extra):
    """Start (or resume) and SIGKILL as soon as a checkpoint's temporary file appears, once
    ``after`` iterations are safely checkpointed."""
    proc = start(config, work, gpus, *extra)
    wait_for(proc, lambda: saved_iter(work) >= after and bool(temporaries(work)),
             f'a checkpoint being written after iteration {after}')
    kill(proc)
    return bool(temporaries(work))  # still there: the kill landed before the rename


def kill_at_random(config, work, gpus, rng, *extra):
    """Resume and SIGKILL a random time after a random number of new checkpoints."""
    before = {p: os.stat(p).st_mtime_ns for p in checkpoints(work)}
    wanted = rng.randint(1, 2)
    proc = start(config, work, gpus, *extra)

    def new_ones():
        now = {p: os.stat(p).st_mtime_ns for p in checkpoints(work) if osp.exists(p)}
        return sum(1 for p, t in now.items() if before.get(p) != t) >= wanted

    wait_for(proc, new_ones, f'{wanted} new checkpoint(s)')
    time.sleep(rng.uniform(0.0, 0.4))
    kill(proc)


def assert_consistent(work):
    """Every checkpoint on disk is complete and last_checkpoint names one of them."""
    if not (work / 'last_checkpoint').exists():
        assert not checkpoints(work), SEED  # killed while writing the very first one
        return None
    for path in checkpoints(work):
        assert checkpoint_problem(path) is None, (path, checkpoint_problem(path), SEED)
    named = (work / 'last_checkpoint').read_text().strip()
    assert named in checkpoints(work) and checkpoint_problem(named) is None, (named, SEED)
    return named


def assert_same_training_state(a, b):
    ca, cb = (torch.load(p, weights_only=True) for p in (a, b))
    assert ca['meta']['iter'] == cb['meta']['iter'] == MAX_ITERS
    assert ca['state_dict'].keys() == cb['state_dict'].keys()
    for k in ca['state_dict']:
        assert torch.equal(ca['state_dict'][k], cb['state_dict'][k]), (k, SEED)
    sa, sb = ca['optimizer']['state'], cb['optimizer']['state']
    assert sa.keys() == sb.keys() and sa
    for i in sa:
        for name in sa[i]:
            assert torch.equal(sa[i][name], sb[i][name]), (i, name, SEED)


def kill_and_resume(tmp_path, gpus):
    rng = random.Random(SEED)
    config = write_diffkd_experiment(tmp_path, max_iters=MAX_ITERS, pad_mb=32)
    work = tmp_path / 'work'
    # 1. killed while a checkpoint is being written (retried if the write won the race)
    landed = False
    for attempt in range(3):
        landed = kill_mid_write(config, work, gpus, rng.randint(0, 3),
                                *(['--resume'] if attempt else []))
        if landed:
            break
    assert landed, f'no kill landed mid-write in 3 tries (seed {SEED})'
    assert_consistent(work)
    # 2. resumed, killed again at a random point
    kill_at_random(config, work, gpus, rng, '--resume')
    resume_from = assert_consistent(work)
    clean_start = tmp_path / 'clean_from.pth'
    shutil.copy(resume_from, clean_start)
    # 3. resumed to the end
    text = run(config, work, gpus, '--resume')
    assert f'Resuming from {resume_from}' in text
    assert not temporaries(work)  # the killed runs' temporary files were cleaned up
    # the reference: a fresh work dir resumed from a copy of that checkpoint
    clean = tmp_path / 'clean'
    run(config, clean, gpus, '--resume', str(clean_start))
    assert_same_training_state(work / f'iter_{MAX_ITERS}.pth', clean / f'iter_{MAX_ITERS}.pth')


@pytest.mark.slow  # 5-6 tools/train.py processes: about 1 min on 2 shared cores
def test_sigkill_and_resume(tmp_path):
    kill_and_resume(tmp_path, gpus=0)


@pytest.mark.slow  # 5-6 dist_train.sh launches of 2 processes each: several minutes
def test_sigkill_and_resume_ddp(tmp_path):
    kill_and_resume(tmp_path, gpus=2)


NAN_ON_RANK_1 = '''
_base_ = './toy_diffkd.py'
model = dict(distill_losses=dict(logits=dict(loss=dict(
    _delete_=True, type='FlakyMSE', bad_iters=[3], ranks=[1]))))
'''


@pytest.mark.slow  # one dist_train.sh launch of 2 processes
def test_ddp_nan_on_one_rank_skips_on_all_ranks(tmp_path):
    """Rank 1 alone gets a NaN loss: both ranks skip the step (a rank skipping backward alone
    would leave the other waiting in DDP's all-reduce until the timeout)."""
    write_diffkd_experiment(tmp_path, max_iters=5, pad_mb=0)
    config = tmp_path / 'toy_nan_rank1.py'
    config.write_text(NAN_ON_RANK_1)
    text = run(str(config), tmp_path / 'work', 2, '--on-nonfinite', 'skip', timeout=300)
    assert 'Non-finite loss at iteration 3/5: loss_logits=nan (rank 1)' in text, text[-3000:]
    assert 'Skipped this step' in text and 'Iter(train) [5/5]' in text
    final = torch.load(tmp_path / 'work' / 'iter_5.pth', weights_only=True)
    assert final['optimizer']['state'][0]['step'].item() == 4  # 5 iterations, 1 skipped
