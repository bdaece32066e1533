"""Resident memory stays flat over many DiffKD distillation steps (the short version of
``benchmarks/soak_diffkd.py``), and the measurement does see a leak of 256 KiB per step."""
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOLERANCE_MIB = 4.0

pytestmark = pytest.mark.skipif(not osp.exists('/proc/self/statm'), reason='reads /proc (Linux)')


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location('mmdiffkd_soak_diffkd',
                                                  osp.join(REPO, 'benchmarks', 'soak_diffkd.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rss_is_flat_after_warmup(bench, tmp_path):
    result = bench.soak(iters=100, every=10, warmup=40, ckpt_every=50, batch_size=4,
                        work_dir=str(tmp_path))
    curve = ', '.join(f'{i}:{r / bench.MIB:.1f}' for i, r in result['curve'])
    assert result['growth_mib'] < TOLERANCE_MIB, curve


def test_the_soak_sees_a_leak(bench, tmp_path):
    """The control: the same measurement with 256 KiB kept alive per step (15 MiB)."""
    result = bench.soak(iters=100, every=10, warmup=40, ckpt_every=50, batch_size=4,
                        leak_kb=256, work_dir=str(tmp_path))
    assert result['growth_mib'] > TOLERANCE_MIB + 4
