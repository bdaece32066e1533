"""Engine pieces: safe checkpoint loading, the resume allow-list, per-step seeding, export,
crash-safe checkpoint writing and the non-finite loss guard.

Importing this package (``import mmdiffkd.engine``, done by the tools and by the distiller)
registers MMEngine's checkpoint globals with torch's ``weights_only`` unpickler and makes every
MMEngine checkpoint scheme load with ``weights_only=True``; see :mod:`.checkpoint`.
"""
from .atomic import AtomicLocalBackend, atomic_open, atomic_torch_save, atomic_write_bytes
from .checkpoint import (CheckpointMismatchError, UnsafeCheckpointError, extract_state_dict,
                         install_safe_loaders, load_checkpoint_file, load_checkpoint_safe,
                         load_state_dict_checked, revise_state_dict, torch_load_safe)
from .checkpoint_hook import AtomicCheckpointHook
from .cpu_ddp import CPUDistributedDataParallel
from .diffkd_vis_hook import DiffKDVisHook
from .export import export_student, student_state_dict
from .integrity import (CorruptCheckpointError, check_checkpoint, checkpoint_problem,
                        resume_checkpoint_in)
from .launch import prepare_launch, setup_amp, use_safe_training
from .nonfinite import (FiniteLossAmpOptimWrapper, FiniteLossOptimWrapper, NonFiniteLossError,
                        NonFiniteLossHook)
from .safe_globals import (mmengine_checkpoint_globals, mmengine_safe_globals,
                           register_mmengine_safe_globals)
from .step_seed_hook import StepSeedHook, step_seed

install_safe_loaders()

__all__ = [
    'AtomicLocalBackend', 'atomic_open', 'atomic_torch_save', 'atomic_write_bytes',
    'AtomicCheckpointHook', 'CorruptCheckpointError', 'check_checkpoint', 'checkpoint_problem',
    'resume_checkpoint_in', 'use_safe_training', 'FiniteLossAmpOptimWrapper',
    'FiniteLossOptimWrapper', 'NonFiniteLossError', 'NonFiniteLossHook',
    'CheckpointMismatchError', 'UnsafeCheckpointError', 'extract_state_dict',
    'install_safe_loaders', 'load_checkpoint_file', 'load_checkpoint_safe',
    'load_state_dict_checked', 'revise_state_dict', 'torch_load_safe',
    'CPUDistributedDataParallel', 'DiffKDVisHook', 'export_student', 'student_state_dict',
    'prepare_launch',
    'setup_amp', 'StepSeedHook', 'step_seed', 'mmengine_checkpoint_globals',
    'mmengine_safe_globals', 'register_mmengine_safe_globals',
]
