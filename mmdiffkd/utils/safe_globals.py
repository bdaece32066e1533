"""The exact set of globals MMEngine 0.10.7 pickles into its own checkpoints.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: it rebuilds tensors, containers
and plain Python values, and refuses every other global. MMEngine's ``Runner.save_checkpoint``
writes a little more than that, all of it in ``checkpoint['message_hub']``:

- ``mmengine.logging.HistoryBuffer`` objects (the smoothed log scalars), which hold numpy arrays:
  ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype`` (whose state is
  set on its class, ``numpy.dtypes.Float64DType`` ...) and, for numpy scalars,
  ``numpy.core.multiarray.scalar``;
- each buffer's ``statistics_methods`` dict, whose values (``HistoryBuffer.min`` ...) pickle as
  ``builtins.getattr(HistoryBuffer, 'min')``.

Found with ``torch.serialization.get_unsafe_globals_in_checkpoint`` on checkpoints written by the
Runner (see ``tests/utils/test_checkpoint_safety.py``). We allow exactly these, and instead of
the real ``getattr`` (which would let a pickle read any attribute of any allowed object) a
stand-in that only returns ``HistoryBuffer``'s registered statistics methods.
"""
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

try:  # numpy 2 renamed numpy.core to numpy._core (1.26 has both); pickles name the one they used
    from numpy._core import multiarray as _np_multiarray
    _NP_CORE = 'numpy._core.multiarray'
except ImportError:  # pragma: no cover - numpy < 1.26
    from numpy.core import multiarray as _np_multiarray
    _NP_CORE = 'numpy.core.multiarray'


DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj, name):
    """Restricted ``getattr``: only ``HistoryBuffer.<registered statistics method>``."""
    allowed = _statistics_methods()
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return allowed[name]
    raise pickle.UnpicklingError(
        f'Refusing getattr({obj!r}, {name!r}) while loading a checkpoint: only the '
        f'HistoryBuffer statistics methods {sorted(allowed)} are allowed (MMEngine writes '
        'nothing else through getattr).')


def _statistics_methods():
    """MMEngine's default statistics (registered lazily, at the first ``HistoryBuffer()``)
    plus any registered with ``HistoryBuffer.register_statistics``, when they are attributes
    of ``HistoryBuffer`` (that is how they pickle)."""
    methods = {name: getattr(HistoryBuffer, name) for name in DEFAULT_STATISTICS}
    for name, method in HistoryBuffer._statistics_methods.items():
        if getattr(HistoryBuffer, name, None) is method:
            methods[name] = method
    return methods


def _numpy_globals():
    names = {}
    for module in sorted({_NP_CORE, 'numpy.core.multiarray', 'numpy._core.multiarray'}):
        # a checkpoint written under numpy 1.x names numpy.core, under 2.x numpy._core
        names[f'{module}._reconstruct'] = _np_multiarray._reconstruct
        names[f'{module}.scalar'] = _np_multiarray.scalar
    return names


def mmengine_checkpoint_globals():
    """``[(object, 'module.name'), ...]`` for ``torch.serialization.add_safe_globals``."""
    entries = [(obj, name) for name, obj in _numpy_globals().items()]
    entries += [
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (history_buffer_getattr, 'builtins.getattr'),
    ]
    # a dtype is rebuilt by numpy.dtype(...) then BUILD on its class (numpy.dtypes.Float64DType
    # ...), which the unpickler only allows for listed types: the numeric and bool dtypes
    for dtype_cls in sorted({type(np.dtype(c)) for c in '?bBhHiIlLqQefdgFDG'}, key=str):
        entries.append((dtype_cls, f'{dtype_cls.__module__}.{dtype_cls.__name__}'))
    return entries


_REGISTERED = False


def register_mmengine_safe_globals():
    """Allow, process-wide, exactly the globals MMEngine writes into its checkpoints.

    Part of :func:`mmdiffkd.install_safe_loaders` (run when ``mmdiffkd`` is imported), so
    ``Runner.resume`` and ``load_from`` of an MMEngine checkpoint work under
    ``weights_only=True`` in any program that uses mmdiffkd (tools, tests, notebooks), not only
    in ``tools/train.py``. Idempotent.
    """
    global _REGISTERED
    if not _REGISTERED:
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
        _REGISTERED = True
