"""Recorders: forward hooks that keep what a module received or returned during one step.

A record is addressed by a module path (a name from ``model.named_modules()``), a source
(``'output'`` or ``'input'``), which call of the module (``call``; a shared head runs once
per FPN level) and an ``index`` into tuple / list / dict outputs (an FPN level, a stage).

Paths are checked when the recorder is built: a wrong one is an error that lists the closest
real paths. Hooks only store tensors while a :meth:`RecorderSet.recording` block is open, so
validation forwards cost nothing. A block starts by emptying the store; what it recorded stays
readable after it closes, until the next block or :meth:`RecorderSet.clear` (the distiller
clears both sets at the end of every step, also when a loss raises), so records never grow over
a long run.
"""
import difflib
from contextlib import contextmanager

import torch

SOURCES = ('output', 'input')


class StopForward(Exception):
    """Raised from a hook to end a forward once every record it needs has been taken."""


def resolve_module(model, path, role='model'):
    """Return ``model``'s submodule named ``path``; a wrong path names the closest real ones."""
    if not isinstance(path, str) or not path:
        raise ValueError(f'{role} module path must be a non-empty string like "backbone.layer4", '
                         f'got {path!r}.')
    names = [name for name, _ in model.named_modules() if name]
    modules = dict(model.named_modules())
    if path in modules:
        return modules[path]
    close = difflib.get_close_matches(path, names, n=5, cutoff=0.4)
    # Also offer the children of the deepest existing prefix ("backbone.layer9" -> layer1..4).
    parent = path.rsplit('.', 1)[0] if '.' in path else ''
    siblings = [n for n in names if n.rsplit('.', 1)[0] == parent and n not in close] \
        if (parent in modules) else []
    hint = close + siblings[:8]
    if not hint:
        hint = [n for n in names if '.' not in n]
    raise KeyError(f'{role} has no module "{path}". Closest real paths: {", ".join(hint)}. '
                   f'(All paths: [name for name, _ in model.named_modules()].)')


def select(value, index, where=''):
    """Follow ``index`` (an int/str or a list of them for nested outputs) into ``value``, a
    tuple / list / dict output; a tensor is never indexed."""
    if index is None:
        return value
    steps = index if isinstance(index, (list, tuple)) else [index]
    for step in steps:
        if torch.is_tensor(value):
            # x[0] would slice the batch axis and fail later with an unrelated message
            raise IndexError(f'Cannot take index {step!r} of the record {where}: it is a tensor '
                             f'of shape {tuple(value.shape)}, and index= picks an element of a '
                             f'tuple / list / dict output (on a tensor it would slice the batch '
                             f'axis). Remove index (or the part of a nested index that reaches '
                             f'the tensor).')
        try:
            value = value[step]
        except (IndexError, KeyError, TypeError) as err:
            if isinstance(value, (list, tuple)):
                valid = f'an int in [0, {len(value)})'
            elif isinstance(value, dict):
                valid = f'one of the keys {sorted(value)}'
            else:
                valid = f'no index (the record is a {type(value).__name__})'
            raise IndexError(f'Cannot take index {step!r} of the record {where}: valid is '
                             f'{valid}.') from err
    return value


def _tensor_versions(value):
    """``{id(tensor): tensor._version}`` of every tensor in a (nested) output."""
    if torch.is_tensor(value):
        return {id(value): value._version}
    out = {}
    items = value.values() if isinstance(value, dict) else \
        value if isinstance(value, (list, tuple)) else ()
    for v in items:
        out.update(_tensor_versions(v))
    return out


class _ModuleRecorder:
    """The hook on one module: a list of what it saw in each call of the current step."""

    def __init__(self, store, key, source):
        self.store = store
        self.key = key
        self.source = source

    def forward_hook(self, module, args, output):
        self._take(output)

    def forward_pre_hook(self, module, args):
        self._take(args[0] if len(args) == 1 else args)

    def _take(self, value):
        store = self.store
        if not store.active:
            return
        calls = store.records.setdefault(self.key, [])
        calls.append(value)
        store.versions[(self.key, len(calls) - 1)] = _tensor_versions(value)
        if store.stop_when_complete and store.complete():
            raise StopForward


class RecorderSet:
    """All records of one model (the student or the teacher).

    ``add(path, source)`` hooks a module once, however many losses read it. ``get(path,
    source, call, index)`` returns one record of the last step. With ``stop_early=True`` the
    forward is cut short (by :class:`StopForward`) as soon as every record needed was taken:
    a teacher whose head is never distilled does not run its head.
    """

    def __init__(self, model, role='model'):
        self.model = model
        self.role = role
        self.records = {}
        self.versions = {}  # (key, call) -> {id(tensor): version when recorded}
        self.needed = {}  # key -> number of calls needed before the forward may stop
        self.active = False
        self.stop_when_complete = False
        self._hooks = {}
        self._handles = []

    def add(self, path, source='output', calls_needed=1):
        if source not in SOURCES:
            raise ValueError(f'source must be one of {SOURCES}, got {source!r}.')
        module = resolve_module(self.model, path, self.role)
        key = (path, source)
        self.needed[key] = max(self.needed.get(key, 0), calls_needed)
        if key in self._hooks:
            return key
        hook = _ModuleRecorder(self, key, source)
        if source == 'output':
            handle = module.register_forward_hook(hook.forward_hook)
        else:
            handle = module.register_forward_pre_hook(hook.forward_pre_hook)
        self._hooks[key] = hook
        self._handles.append(handle)
        return key

    def complete(self):
        return all(len(self.records.get(k, ())) >= n for k, n in self.needed.items())

    def missing(self):
        """Recorded modules that did not run at all in the last recording block."""
        return [f'{path} ({source})' for (path, source) in self.needed
                if not self.records.get((path, source))]

    @contextmanager
    def recording(self, stop_early=False):
        """Record inside the block; records stay readable until the next block or clear()."""
        self.clear()
        self.active = True
        self.stop_when_complete = stop_early
        try:
            yield self
        finally:
            self.active = False
            self.stop_when_complete = False

    def run(self, fn, stop_early=False):
        """Call ``fn()`` while recording; a StopForward from the hooks ends it quietly."""
        with self.recording(stop_early=stop_early):
            try:
                return fn()
            except StopForward:
                return None

    def get(self, path, source='output', call=None, index=None):
        key = (path, source)
        calls = self.records.get(key)
        where = f'{self.role} "{path}" ({source})'
        if not calls:
            raise RuntimeError(f'No record of {where} in this step: the module did not run in '
                               f'the forward. Pick a module that runs in mode="loss" for the '
                               f'student and mode="tensor" for the teacher.')
        if call is None:
            if len(calls) != 1:
                raise RuntimeError(f'{where} ran {len(calls)} times in one forward (a shared '
                                   f'head runs once per level); set call=<int in [0, '
                                   f'{len(calls)})> or call=[...] in the declaration.')
            call = 0
        if not -len(calls) <= call < len(calls):
            raise IndexError(f'call={call} of {where}, but it ran {len(calls)} times; valid: '
                             f'[0, {len(calls)}).')
        value = select(calls[call], index, where)
        if torch.is_tensor(value):
            recorded = self.versions.get((key, call % len(calls)), {}).get(id(value))
            if recorded is not None and value._version != recorded:
                raise RuntimeError(
                    f'The {where} record was changed in place after it was recorded (an '
                    'in-place op such as ReLU(inplace=True) or "+=" follows the module), so it '
                    'no longer holds what the module returned. Record the module after that op '
                    '(e.g. the block, or the activation), not the one before it.')
        return value

    def clear(self):
        self.records.clear()
        self.versions.clear()

    def remove(self):
        """Remove every hook (also done when the distiller is garbage-collected)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._hooks.clear()
        self.records.clear()

    @property
    def num_hooks(self):
        return len(self._handles)
