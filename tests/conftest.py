"""Suite-wide test settings.

- One torch thread: the suite's models are tiny, and on a 2-core machine two threads per op cost
  more in synchronisation than they gain (a 6-step toy training: 17 s with 2 threads, 2.5 s with 1,
  measured under load by the tools tests).
- MMEngine keeps global state between tests: every Runner registers a ``DefaultScope`` instance
  (``Registry.build`` resolves bare names in the latest one) and a ``MessageHub`` named after
  the experiment (two Runners started in the same second share one, and its log history).
  Instances a test creates are dropped after it, and those of module-scoped fixtures after their
  module; tests should still write scope-qualified types (``'mmdiffkd.DiffKD'``) when they
  build directly.
"""
import contextlib

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from tiny_models import toy_teacher_checkpoint

torch.set_num_threads(1)


@contextlib.contextmanager
def _restored_mmengine_instances():
    before = {cls: dict(cls._instance_dict) for cls in (DefaultScope, MessageHub)}
    try:
        yield
    finally:
        for cls, instances in before.items():
            cls._instance_dict.clear()
            cls._instance_dict.update(instances)


@pytest.fixture(scope='module', autouse=True)
def _drop_module_scopes():
    with _restored_mmengine_instances():
        yield


@pytest.fixture(autouse=True)
def _drop_test_scopes():
    with _restored_mmengine_instances():
        yield


@pytest.fixture
def teacher_ckpt(tmp_path):
    """A toy teacher checkpoint (``ToyClassifier`` width 16, seed 1) in the test's tmp dir; a
    test file may shadow it with its own (a task model's teacher)."""
    return toy_teacher_checkpoint(tmp_path / 'teacher.pth')
