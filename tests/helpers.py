"""Helpers shared by test files (import them by module name: setup.cfg puts ``tests/`` on the
path). Models and data live in ``tiny_models``, fault injection in ``fault_helpers``."""
import torch.nn as nn


def count_hooks(model: nn.Module) -> int:
    """Number of forward (pre-)hooks on ``model`` and its submodules."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
