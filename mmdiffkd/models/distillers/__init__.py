"""The distiller (student + frozen teacher + declared losses), its plan and its recorders."""
from .declaration import Declaration, Entry, Record, parse_declarations
from .distiller import DistillPair, Distiller
from .recorders import RecorderSet
from .transforms import TRANSFORMS

__all__ = ['Distiller', 'DistillPair', 'RecorderSet', 'Declaration', 'Entry', 'Record',
           'parse_declarations', 'TRANSFORMS']
