"""The distiller (student + frozen teacher + declared losses), its plan and its recorders."""
from .builder import build_model_in_scope, infer_scope, load_model_spec, resolve_config_path
from .declaration import Declaration, Entry, Record, parse_declarations
from .distiller import DistillPair, Distiller
from .recorders import RecorderSet, StopForward, count_hooks, resolve_module
from .teacher_eval import TeacherValHook
from .transforms import TRANSFORMS

__all__ = ['Distiller', 'DistillPair', 'TeacherValHook', 'RecorderSet', 'StopForward',
           'count_hooks', 'resolve_module', 'Declaration', 'Entry', 'Record',
           'parse_declarations', 'TRANSFORMS',
           'build_model_in_scope', 'infer_scope', 'load_model_spec', 'resolve_config_path']
