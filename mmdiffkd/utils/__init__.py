"""The ground floor that ``models/`` and ``engine/`` both build on: safe checkpoint loading
(:mod:`.checkpoint`, :mod:`.safe_globals`, :mod:`.integrity`) and building a model from a config
in its own registry scope (:mod:`.builder`). Nothing here imports ``models/`` or ``engine/``."""
from .builder import build_model_in_scope, infer_scope, load_model_spec, resolve_config_path
from .checkpoint import (CheckpointMismatchError, UnsafeCheckpointError, extract_state_dict,
                         install_safe_loaders, load_checkpoint_file, load_checkpoint_safe,
                         load_state_dict_checked)
from .integrity import (CorruptCheckpointError, check_checkpoint, check_checkpoint_path,
                        checkpoint_problem, is_remote, resume_checkpoint_in)
from .safe_globals import mmengine_checkpoint_globals

__all__ = [
    'build_model_in_scope', 'infer_scope', 'load_model_spec', 'resolve_config_path',
    'CheckpointMismatchError', 'UnsafeCheckpointError', 'extract_state_dict',
    'install_safe_loaders', 'load_checkpoint_file', 'load_checkpoint_safe',
    'load_state_dict_checked',
    'CorruptCheckpointError', 'check_checkpoint', 'check_checkpoint_path', 'checkpoint_problem',
    'is_remote', 'resume_checkpoint_in',
    'mmengine_checkpoint_globals',
]
