"""benchmarks/gpu_check.py, walked on the CPU (--device cpu --dry-run): the same code as on a GPU
(the cuda tests collected, the benchmark's eager and compiled modules in float32 and bfloat16,
the no-host-read check, two training iterations of the scenes RetinaNet distillation), tiny."""
import os.path as osp
import sys

import pytest

pytest.importorskip('mmcv.ops', reason='the scenes distillation needs mmdet with mmcv ops')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'benchmarks'))

import gpu_check  # noqa: E402


def test_dry_run_passes_every_check(tmp_path, capsys):
    out = tmp_path / 'table.md'
    assert gpu_check.main(['--device', 'cpu', '--dry-run', '--iters', '1', '--cases',
                           'dry-map', '--out', str(out)]) == 0
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith('| ') and 'status' not in line]
    assert rows and all(line.endswith('| ok |') for line in rows), table
    checks = [line.split(' | ')[0][2:] for line in rows]
    assert checks.count('CUDA tests (pytest -m cuda)') == 1
    # a tiny two-level map case x float32 / bfloat16, eager and compiled each
    assert checks.count('DiffKD fwd+bwd eager') == 2 == checks.count('DiffKD fwd+bwd compiled')
    assert checks.count('no host sync in fwd+bwd') == 2
    assert any(c.startswith('scenes distillation') for c in checks)
    assert 'float32 | loss rel. diff to eager' in table  # the compiled path is checked


def test_a_failing_check_fails_the_script(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('broken on purpose')

    monkeypatch.setattr(gpu_check.DiffKD, 'forward', broken)
    assert gpu_check.main(['--device', 'cpu', '--dry-run', '--skip', 'tests', 'bench',
                           'train']) == 1


def test_cuda_needs_a_gpu_or_says_so():
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is here: the script would run')
    with pytest.raises(SystemExit):
        gpu_check.main(['--device', 'cuda'])
