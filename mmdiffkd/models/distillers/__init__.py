"""The distiller (student + frozen teacher + declared losses) and its recorders."""
from .builder import build_model_in_scope, infer_scope, load_model_spec, resolve_config_path
from .distiller import Distiller
from .recorders import RecorderSet, StopForward, count_hooks, resolve_module
from .teacher_eval import TeacherValHook

__all__ = ['Distiller', 'TeacherValHook', 'RecorderSet', 'StopForward', 'count_hooks',
           'resolve_module',
           'build_model_in_scope', 'infer_scope', 'load_model_spec', 'resolve_config_path']
