"""tools/dist_train.sh and dist_test.sh with 2 CPU processes (torchrun, gloo backend)."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from helpers import REPO, TESTS_DIR, free_port, write_experiment

import mmdiffkd  # noqa: F401  (torch.load of MMEngine checkpoints: weights_only, the allow-list)


def run_script(script, args, cwd, timeout=240):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([TESTS_DIR, str(cwd)]))
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script)] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow  # about 50 s on 2 shared cores: 4 processes each import torch + MMEngine
def test_dist_train_and_test_two_cpu_processes(tmp_path):
    config = write_experiment(tmp_path)
    work_dir = tmp_path / 'work'
    out = run_script('dist_train.sh', [config, '2', '--work-dir', str(work_dir)], tmp_path)
    assert 'Distributed training: True' in out and 'GPU number: 2' in out, out[-3000:]
    assert "using the gloo backend instead of 'nccl'" in out  # no CUDA here
    # 8 images, 2 ranks x batch 2: the distributed sampler splits the data
    assert 'Iter(train) [2/2]' in out and 'toy/accuracy' in out
    ckpt = torch.load(work_dir / 'iter_2.pth', weights_only=True)
    assert not any(k.startswith('teacher.') for k in ckpt['state_dict'])
    assert ckpt['meta']['iter'] == 2
    # both ranks trained the same replica: DDP kept the student identical; the checkpoint (rank
    # 0) holds the weights each rank ends with
    out = run_script('dist_test.sh', [config, str(work_dir / 'iter_2.pth'), '2',
                                      '--work-dir', str(tmp_path / 'test')], tmp_path)
    assert re.search(r'toy/accuracy: \d', out), out[-2000:]
