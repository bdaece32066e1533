"""Engine pieces: hooks, the CPU DDP wrapper, per-step seeding, export and publishing,
crash-safe checkpoint writing, the non-finite loss guard and the tools' launch helpers.

Safe checkpoint loading lives one floor down, in :mod:`mmdiffkd.utils` (``models/`` needs it
too); importing ``mmdiffkd`` turns it on (:func:`mmdiffkd.install_safe_loaders`).
"""
from .atomic import AtomicLocalBackend, atomic_open, atomic_torch_save, atomic_write_bytes
from .checkpoint_hook import AtomicCheckpointHook
from .cpu_ddp import CPUDistributedDataParallel
from .diffkd_vis_hook import DiffKDVisHook
from .export import export_student, student_state_dict
from .launch import prepare_launch, setup_amp, use_safe_training
from .nonfinite import (FiniteLossAmpOptimWrapper, FiniteLossOptimWrapper, NonFiniteLossError,
                        NonFiniteLossHook)
from .step_seed_hook import StepSeedHook, step_seed
from .teacher_val_hook import TeacherValHook

__all__ = [
    'AtomicLocalBackend', 'atomic_open', 'atomic_torch_save', 'atomic_write_bytes',
    'AtomicCheckpointHook', 'CPUDistributedDataParallel', 'DiffKDVisHook', 'export_student',
    'student_state_dict', 'prepare_launch', 'setup_amp', 'use_safe_training',
    'FiniteLossAmpOptimWrapper', 'FiniteLossOptimWrapper', 'NonFiniteLossError',
    'NonFiniteLossHook', 'StepSeedHook', 'step_seed', 'TeacherValHook',
]
