"""Reseed every training step from (seed, iteration), so a resumed run is the uninterrupted one.

MMEngine saves the weights, optimizer, schedulers and the iteration count, but not the random
number generators: after ``--resume`` the dropout masks and DiffKD's noise and timesteps are
drawn from a freshly seeded generator, so the run drifts from the one that was never stopped.
Saving generator states is not enough either: between the checkpoint and the next step the
runner draws a varying amount (the dataloader skip on resume, a new epoch's iterator, a
validation loader). Seeding each step from ``(seed, iter)`` needs no saved state and makes step
``i`` draw the same numbers however the run got there.

Data augmentation drawn in the main process (``num_workers=0``) still follows the loader,
not the step; with ``num_workers > 0`` MMEngine seeds workers from the seed, so it matches too.
"""
import random

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmdiffkd.registry import HOOKS

_MAX_SEED = 2**31 - 1


def step_seed(seed, step, rank=0):
    """A 31-bit seed for (seed, step, rank), well spread across steps."""
    mixed = np.random.SeedSequence([int(seed) % 2**32, int(step), int(rank)])
    return int(mixed.generate_state(1)[0]) & _MAX_SEED


@HOOKS.register_module()
class StepSeedHook(Hook):
    """Seed ``torch`` (CPU and CUDA), ``numpy`` and ``random`` before every training step.

    Args:
        diff_rank_seed (bool, optional): a different stream per rank. ``None`` follows the
            runner's ``randomness.diff_rank_seed`` (MMEngine's default: the same seed on
            every rank).
    """

    priority = 'HIGHEST'

    def __init__(self, diff_rank_seed=None):
        self.diff_rank_seed = diff_rank_seed

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        seed = runner.seed if runner.seed is not None else 0
        diff_rank = self.diff_rank_seed
        if diff_rank is None:
            diff_rank = bool(getattr(runner, '_randomness_cfg', {}).get('diff_rank_seed', False))
        value = step_seed(seed, runner.iter, get_rank() if diff_rank else 0)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)  # also seeds every CUDA device
