"""Atomic file writes: a crash or ``kill -9`` never leaves a half-written file under its name.

The data goes to a temporary file in the same directory (``.NAME.<random>.tmp``), is flushed
and ``fsync``-ed, then ``os.replace`` moves it onto the final name (atomic on POSIX file
systems) and the directory is ``fsync``-ed so the rename itself survives a power loss. A reader
sees either the old file or the complete new one. A process killed mid-write leaves only the
hidden temporary file; :func:`remove_stale_temporaries` cleans those up.

:class:`AtomicLocalBackend` is MMEngine's ``LocalBackend`` with atomic ``put`` / ``put_text``,
registered as the file backend ``'mmdiffkd_atomic_local'``; ``Runner.save_checkpoint`` writes
through it when called with ``backend_args=dict(backend='mmdiffkd_atomic_local')``, which
:class:`mmdiffkd.engine.AtomicCheckpointHook` does.
"""
import glob
import io
import os
import os.path as osp
import secrets
from contextlib import contextmanager

from mmengine.fileio import LocalBackend, register_backend

ATOMIC_BACKEND = 'mmdiffkd_atomic_local'
_TMP_SUFFIX = '.tmp'


def fsync_dir(directory):
    """Make a rename / unlink in ``directory`` durable (no-op where directories can't be
    opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_name_pattern(path):
    """The glob matching the temporary files :func:`atomic_open` creates for ``path``."""
    directory, name = osp.split(osp.abspath(path))
    return osp.join(glob.escape(directory), f'.{glob.escape(name)}.*{_TMP_SUFFIX}')


@contextmanager
def atomic_open(path, mode='wb', encoding=None):
    """``open(path, mode)`` whose content appears under ``path`` only once complete.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f'atomic_open writes whole files: mode must be "wb" or "w", '
                         f'got {mode!r}.')
    path = osp.abspath(os.fspath(path))
    directory, name = osp.split(path)
    os.makedirs(directory, exist_ok=True)
    while True:  # O_EXCL with mode 0o666: a fresh file, permissions from the umask as open()
        tmp = osp.join(directory, f'.{name}.{secrets.token_hex(4)}{_TMP_SUFFIX}')
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0),
                         0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)


def atomic_write_bytes(path, data):
    with atomic_open(path, 'wb') as f:
        f.write(data)


def atomic_write_text(path, text, encoding='utf-8'):
    with atomic_open(path, 'w', encoding=encoding) as f:
        f.write(text)


def atomic_torch_save(obj, path):
    """``torch.save(obj, path)``, atomically."""
    import torch
    with atomic_open(path, 'wb') as f:
        torch.save(obj, f)


def torch_save_bytes(obj):
    """The bytes ``torch.save`` writes for ``obj`` (to hash them before choosing a name)."""
    import torch
    with io.BytesIO() as buffer:
        torch.save(obj, buffer)
        return buffer.getvalue()


def remove_stale_temporaries(directory, patterns=('*.pth', 'last_checkpoint')):
    """Delete the temporary files a killed writer left in ``directory``; return their paths.

    Only files named as :func:`atomic_open` names them (``.NAME.<random>.tmp``) whose ``NAME``
    matches one of the glob ``patterns`` are touched.
    """
    removed = []
    for pattern in patterns:
        for tmp in sorted(glob.glob(osp.join(glob.escape(directory),
                                             f'.{pattern}.*{_TMP_SUFFIX}'))):
            try:
                os.unlink(tmp)
                removed.append(tmp)
            except OSError:
                pass
    return removed


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend, writing every file atomically (see module doc)."""

    def put(self, obj, filepath):
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj, filepath, encoding='utf-8'):
        atomic_write_text(filepath, obj, encoding=encoding)
