"""Suite-wide test settings.

- One torch thread: the suite's models are tiny, and on a 2-core machine two threads per op cost
  more in synchronisation than they gain (a 6-step toy training: 17 s with 2 threads, 2.5 s with 1,
  measured under load by the tools tests).
- MMEngine keeps global state between tests: every Runner registers a ``DefaultScope`` instance
  and ``Registry.build`` resolves bare names in the latest one. Scope instances a test creates
  are dropped after it, and those of module-scoped fixtures after their module, so tests
  should still write scope-qualified types (``'mmdiffkd.DiffKD'``) when they build directly.
"""
import contextlib

import pytest
import torch
from mmengine.registry import DefaultScope

torch.set_num_threads(1)


@contextlib.contextmanager
def _restored_default_scopes():
    before = dict(DefaultScope._instance_dict)
    try:
        yield
    finally:
        DefaultScope._instance_dict.clear()
        DefaultScope._instance_dict.update(before)


@pytest.fixture(scope='module', autouse=True)
def _drop_module_scopes():
    with _restored_default_scopes():
        yield


@pytest.fixture(autouse=True)
def _drop_test_scopes():
    with _restored_default_scopes():
        yield
