"""Is a checkpoint there and complete? Checked before it is unpickled; which one to resume from.

:func:`check_checkpoint_path` is the one check that a checkpoint argument names a local file
that exists or a URL / MMEngine scheme (:func:`is_remote`, fetched when it is loaded).

``torch.save`` writes a zip archive whose index (the central directory) is at the end: a file
cut short by a crash, a full disk or an interrupted copy has no index, and torch then fails
with a miniz error that names no file. Worse, torch does not verify the CRC-32 of the members
it reads, so a file whose bytes changed after writing (disk or copy error) loads silently with
wrong weights. :func:`checkpoint_problem` reads the index and checks every member's CRC-32
(one sequential read of the file, which ``torch.load`` reads anyway), and recognises the
usual impostors: an empty file, an HTML error page, a Git LFS pointer.

Files in torch's legacy format (a plain pickle, ``_use_new_zipfile_serialization=False``, as
some old model-zoo checkpoints are) carry no checksums; their truncation is caught when
``torch.load`` reads them (see :func:`mmdiffkd.utils.checkpoint.torch_load_safe`).
"""
import glob
import os
import os.path as osp
import zipfile
import zlib

ZIP_MAGIC = b'PK\x03\x04'
PICKLE_PROTO = 0x80  # pickle protocol >= 2 starts with this opcode (torch's legacy format)
LAST_CHECKPOINT = 'last_checkpoint'


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated, damaged or not a torch file; nothing in it was loaded."""


def is_remote(path) -> bool:
    """A URL or another MMEngine scheme (``https://``, ``open-mmlab://``, ``s3://``, ...), not a
    local path."""
    return '://' in str(path)


def check_checkpoint_path(filename, what='checkpoint', hint=''):
    """Raise ``TypeError`` / ``FileNotFoundError`` naming ``what`` unless ``filename`` is a local
    file that exists or a URL / MMEngine scheme (those are checked when they are fetched)."""
    if not isinstance(filename, str) or not filename:
        raise TypeError(f'{what} must be a path or URL string, got {filename!r}.')
    if not is_remote(filename) and not osp.isfile(osp.expanduser(filename)):
        raise FileNotFoundError(f'{what} {filename!r} does not exist ' + (
            hint or '(expected a local .pth file or an http(s):// URL).'))


def _impostor(head):
    text = head.lstrip().lower()
    if text.startswith(b'version https://git-lfs'):
        return ('is a Git LFS pointer, not the checkpoint itself: fetch the file with '
                '`git lfs pull`')
    if text.startswith((b'<!doctype', b'<html', b'<?xml', b'<')):
        return ('is an HTML/XML document, not a checkpoint (a failed download, e.g. an error '
                'or login page, saved under the checkpoint\'s name)')
    if text.startswith((b'{', b'[')):
        return 'is JSON text, not a checkpoint'
    return (f'is not a torch checkpoint: it starts with {head[:16]!r}, while torch.save '
            f'writes a zip archive (starting with {ZIP_MAGIC!r}) or, in its legacy format, a '
            'pickle (starting with b"\\x80")')


def checkpoint_problem(f, verify_crc=True):
    """What is wrong with the checkpoint ``f`` (a path or a seekable binary file), or ``None``.

    Args:
        f (str | os.PathLike | file): the checkpoint.
        verify_crc (bool): also check every member's CRC-32 (reads the whole file).
    """
    if isinstance(f, (str, os.PathLike)):
        if not osp.exists(f):
            return 'does not exist'
        if osp.isdir(f):
            return 'is a directory, not a file'
        with open(f, 'rb') as stream:
            return checkpoint_problem(stream, verify_crc)
    start = f.tell()
    try:
        f.seek(0, os.SEEK_END)
        size = f.tell() - start
        f.seek(start)
        head = f.read(64)
        f.seek(start)
        if size == 0:
            return ('is empty (0 bytes): it was created but never written, e.g. by a process '
                    'killed at that moment')
        if head.startswith(ZIP_MAGIC):
            return _zip_problem(f, size, verify_crc)
        if head[0] == PICKLE_PROTO:
            return None  # legacy torch format: no index or checksums to check
        return _impostor(head)
    finally:
        f.seek(start)


def _zip_problem(f, size, verify_crc):
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return (f'is truncated or damaged: a zip archive (the format torch.save writes) of '
                f'{size} bytes without its index at the end, so it was cut short while being '
                'written (a crash, a kill, a full disk) or copied')
    with archive:
        if not any(n.endswith('data.pkl') for n in archive.namelist()):
            return ('is a zip archive but not a torch checkpoint (no data.pkl in it; members: '
                    f'{archive.namelist()[:5]})')
        if not verify_crc:
            return None
        try:
            bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as err:
            return f'is damaged: reading its members failed ({err})'
        if bad is not None:
            return (f'is damaged: the CRC-32 of its member {bad!r} does not match the one '
                    'written with it, so its bytes changed after writing (a disk or copy '
                    'error); torch itself would load the wrong numbers without an error')
    return None


def check_checkpoint(f, what='checkpoint', hint='', name=None):
    """Raise :class:`CorruptCheckpointError` naming the file if ``f`` is not complete
    (``f=None``: nothing to check, e.g. a stream that cannot seek)."""
    if f is None:
        return
    problem = checkpoint_problem(f)
    if problem is not None:
        name = name if name is not None else str(f)
        raise CorruptCheckpointError(f'{what} {name!r} {problem}. Nothing was loaded from '
                                     f'it.{hint}')


def _newest_complete(directory, exclude=()):
    """The most recently written complete resumable ``*.pth`` in ``directory`` (the
    ``best_*`` checkpoints hold no optimizer state and are skipped), or ``None``."""
    candidates = [p for p in glob.glob(osp.join(glob.escape(directory), '*.pth'))
                  if not osp.basename(p).startswith('best_')
                  and osp.abspath(p) not in {osp.abspath(e) for e in exclude}]
    for path in sorted(candidates, key=osp.getmtime, reverse=True):
        if checkpoint_problem(path) is None:
            return path
    return None


def resume_checkpoint_in(work_dir):
    """The checkpoint ``work_dir/last_checkpoint`` names, once checked complete.

    Returns ``None`` when the work dir has no ``last_checkpoint`` (a first run: training
    starts from scratch, as MMEngine does). Raises :class:`CorruptCheckpointError` when the
    named file is missing or incomplete, naming the newest complete checkpoint to resume from
    instead: resuming from an older checkpoint than the user expects is never done silently.
    """
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None
    with open(pointer, encoding='utf-8') as f:
        named = f.read().strip()
    if named and is_remote(named):
        return named  # an object store: its uploads are all-or-nothing
    if named:
        problem = checkpoint_problem(named)
        if problem is None:
            return named
        what = f'{pointer} names {named!r}, which {problem}'
    else:
        what = f'{pointer} is empty (it was being written when the run stopped)'
    directory = osp.dirname(named) if named else work_dir
    good = _newest_complete(directory, exclude=[named] if named else [])
    if good is None:
        advice = (f' There is no complete checkpoint in {directory!r}: start again without '
                  '--resume (in a new work dir), or give one with --resume PATH.')
    else:
        advice = (f' The newest complete checkpoint in {directory!r} is {good!r}: resume '
                  f'from it with `--resume {good}` (training restarts from its iteration).')
    raise CorruptCheckpointError(f'Cannot resume: {what}.{advice} Nothing was loaded.')
