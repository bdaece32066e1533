"""The distiller (student + frozen teacher + declared losses), its plan and its recorders."""
from .declaration import Declaration, Entry, Record, parse_declarations
from .distiller import DistillPair, Distiller
from .recorders import RecorderSet, StopForward, count_hooks, resolve_module
from .transforms import TRANSFORMS

__all__ = ['Distiller', 'DistillPair', 'RecorderSet', 'StopForward', 'count_hooks',
           'resolve_module', 'Declaration', 'Entry', 'Record', 'parse_declarations',
           'TRANSFORMS']
