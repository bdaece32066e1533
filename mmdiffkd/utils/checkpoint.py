"""Checkpoint loading that never runs code from a file: always ``torch.load(weights_only=True)``.

A ``.pth`` file is a pickle; loaded with ``weights_only=False`` it can run any code. MMEngine
0.10.7 leaves the choice to torch's default for local files, and passes ``weights_only=False``
for URLs (``torch.hub.load_state_dict_from_url``'s default), so a teacher checkpoint given as an
``https://`` address would be unpickled without restriction. :func:`install_safe_loaders`
re-registers MMEngine's local, http(s), ``torchvision://``, ``open-mmlab://`` and ``mmcls://``
schemes with loaders that pass ``weights_only=True`` explicitly (the torch environment variable
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot weaken an explicit ``True``). Every MMEngine path
then goes through them: ``Runner.resume``, ``load_from``, ``init_cfg=dict(type='Pretrained')``,
``mmdet.apis.init_detector`` and friends. MMEngine's own checkpoints additionally need the
allow-list of :mod:`mmdiffkd.utils.safe_globals`.

:func:`load_checkpoint_safe` is the one call the distiller uses for the teacher and the student
initialisation: strict by default, and a mismatch names the missing, unexpected and mis-shaped
keys instead of silently keeping random weights.
"""
import io
import logging
import os
import os.path as osp
import pickle
import re
from collections import OrderedDict
from contextlib import contextmanager

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.fileio import get as fileio_get
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import (CheckpointLoader, _get_mmengine_home,
                                        _process_mmcls_checkpoint,
                                        get_deprecated_model_names, get_external_models,
                                        get_mmcls_models, get_torchvision_models)

from .integrity import CorruptCheckpointError, check_checkpoint, check_checkpoint_path
from .safe_globals import register_mmengine_safe_globals

DEFAULT_REVISE_KEYS = ((r'^module\.', ''), )
_LIST_LIMIT = 10


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object that is not plain weights; nothing was executed."""


class CheckpointMismatchError(RuntimeError):
    """A state dict does not fit the model (missing, unexpected or mis-shaped keys)."""

    def __init__(self, message, missing_keys=(), unexpected_keys=(), shape_mismatches=()):
        super().__init__(message)
        self.missing_keys = list(missing_keys)
        self.unexpected_keys = list(unexpected_keys)
        self.shape_mismatches = list(shape_mismatches)


@contextmanager
def _refuse_unsafe(name):
    """Turn torch's weights-only ``UnpicklingError`` into :class:`UnsafeCheckpointError`."""
    register_mmengine_safe_globals()
    try:
        yield
    except UnsafeCheckpointError:
        raise
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {name!r}: it contains a pickled object that is not '
            'plain weights, and mmdiffkd only loads checkpoints with '
            'torch.load(weights_only=True), so nothing in it was executed. Allowed are tensors, '
            'containers, plain Python values and the objects MMEngine writes into its own '
            'checkpoints (mmdiffkd.utils.safe_globals). If you made this file yourself and trust '
            'it, re-save only its tensors: torch.save({"state_dict": sd}, path). '
            f'torch said: {err}') from None


# what torch.load raises for a damaged file (checkpoint_problem catches most of them first)
_DAMAGED = ('PytorchStreamReader', 'unexpected EOF', 'corrupted', 'invalid header',
            'not resizable', 'central directory')


def torch_load_safe(f, map_location='cpu', source=None):
    """``torch.load(f, weights_only=True)`` with clear errors for unsafe pickles and for
    truncated, damaged or non-torch files (:class:`CorruptCheckpointError`, naming the file).

    ``f`` is a path or a seekable binary file; it is checked to be complete (zip index and
    CRC-32 of every member, see :mod:`.integrity`) before anything is unpickled.
    """
    name = source if source is not None else str(f)
    check_checkpoint(f if isinstance(f, (str, os.PathLike)) or f.seekable() else None,
                     hint=' Use another checkpoint, or copy / download this one again.',
                     what='Checkpoint', name=name)
    with _refuse_unsafe(name):
        try:
            return torch.load(f, map_location=map_location, weights_only=True)
        except EOFError:
            raise CorruptCheckpointError(
                f'Checkpoint {name!r} is truncated: the pickle ends early. Nothing was loaded '
                'from it. Use another checkpoint, or copy / download this one again.') from None
        except RuntimeError as err:
            if not any(text in str(err) for text in _DAMAGED):
                raise
            raise CorruptCheckpointError(
                f'Checkpoint {name!r} is truncated or damaged (torch said: '
                f'{str(err).splitlines()[0]}). Nothing was loaded from it. Use another '
                'checkpoint, or copy / download this one again.') from None


# ---- loaders registered into MMEngine's CheckpointLoader -------------------------------------

def load_from_local_safe(filename, map_location=None):
    """Local file, ``weights_only=True``."""
    check_checkpoint_path(filename, 'Checkpoint file')
    return torch_load_safe(osp.expanduser(filename), map_location=map_location)


def load_from_http_safe(filename, map_location=None, model_dir=None):
    """URL, downloaded once into torch's hub cache (as MMEngine does), ``weights_only=True``.

    In distributed runs rank 0 downloads first and the other ranks read its cached file.
    """
    rank, world_size = get_dist_info()

    def load():
        with _refuse_unsafe(filename):
            return torch.hub.load_state_dict_from_url(
                filename, model_dir=model_dir, map_location=map_location, weights_only=True)

    if rank == 0:
        checkpoint = load()
    if world_size > 1:
        barrier()
        if rank > 0:
            checkpoint = load()
    return checkpoint


def _load_url_or_local(url, map_location):
    if url.startswith(('http://', 'https://')):
        return load_from_http_safe(url, map_location=map_location)
    return load_from_local_safe(url, map_location=map_location)


def load_from_torchvision_safe(filename, map_location=None):
    """``torchvision://resnet50`` (and the deprecated ``modelzoo://``) via the safe URL loader."""
    model_name = filename.split('://', 1)[1]
    urls = get_torchvision_models()
    if model_name not in urls:
        raise KeyError(f'Unknown torchvision model {model_name!r} in {filename!r}; '
                       f'known: {", ".join(sorted(urls)[:20])}, ...')
    return load_from_http_safe(urls[model_name], map_location=map_location)


def load_from_openmmlab_safe(filename, map_location=None):
    """``open-mmlab://name`` resolved with MMEngine's tables, loaded safely."""
    model_name = filename.split('://', 1)[1]
    model_name = get_deprecated_model_names().get(model_name, model_name)
    urls = get_external_models()
    if model_name not in urls:
        raise KeyError(f'Unknown OpenMMLab model {model_name!r} in {filename!r}.')
    url = urls[model_name]
    if not url.startswith(('http://', 'https://')):
        url = osp.join(_get_mmengine_home(), url)
    return _load_url_or_local(url, map_location)


def load_from_mmcls_safe(filename, map_location=None):
    """``mmcls://name``: backbone weights of an MMClassification checkpoint, loaded safely."""
    model_name = filename[len('mmcls://'):]
    urls = get_mmcls_models()
    if model_name not in urls:
        raise KeyError(f'Unknown mmcls model {model_name!r} in {filename!r}.')
    return _process_mmcls_checkpoint(load_from_http_safe(urls[model_name], map_location))


def load_from_backend_safe(filename, map_location=None):
    """Object stores (``s3://``, ``petrel://``): bytes through MMEngine's file backends."""
    return torch_load_safe(io.BytesIO(fileio_get(filename)), map_location, source=filename)


# MMEngine's schemes (the prefixes MMEngine 0.10.7 registers) and the safe loader of each.
SAFE_SCHEMES = (
    ('', load_from_local_safe),
    (('http://', 'https://'), load_from_http_safe),
    (('modelzoo://', 'torchvision://'), load_from_torchvision_safe),
    (('open-mmlab://', 'openmmlab://'), load_from_openmmlab_safe),
    ('mmcls://', load_from_mmcls_safe),
    ((r'(\S+\:)?s3://', r'(\S+\:)?petrel:/'), load_from_backend_safe),
)


def install_safe_loaders():
    """Make every MMEngine checkpoint load use ``torch.load(weights_only=True)``. Idempotent.

    The one entry point of safe loading. It changes process-wide state in exactly two ways,
    both through public API:

    1. ``CheckpointLoader.register_scheme(prefixes, loader, force=True)`` for each of
       :data:`SAFE_SCHEMES`, so ``Runner.resume``, ``load_from``,
       ``init_cfg=dict(type='Pretrained')``, ``mmdet.apis.init_detector`` and every other
       MMEngine path loads through this module's loaders;
    2. ``torch.serialization.add_safe_globals`` of exactly the globals MMEngine pickles into
       its own checkpoints (:func:`~mmdiffkd.utils.safe_globals.register_mmengine_safe_globals`,
       done once per process).

    ``import mmdiffkd`` calls it (so ``custom_imports=['mmdiffkd']`` does), the distiller calls
    it when it is built, the tools before they run, and :func:`load_checkpoint_file` before
    every load; calling it again leaves the same state.
    """
    register_mmengine_safe_globals()
    for prefixes, loader in SAFE_SCHEMES:
        CheckpointLoader.register_scheme(prefixes, loader, force=True)


def load_checkpoint_file(filename, map_location='cpu'):
    """Load a checkpoint dict from a local path or URL, always with ``weights_only=True``."""
    if not isinstance(filename, str) or not filename:
        raise TypeError(f'checkpoint must be a non-empty path or URL string, got {filename!r}.')
    install_safe_loaders()
    return CheckpointLoader.load_checkpoint(filename, map_location, logger='silent')


# ---- state dict handling ----------------------------------------------------------------------

def extract_state_dict(checkpoint, filename='<checkpoint>'):
    """The weights: ``checkpoint['state_dict']``, ``checkpoint['model']`` or the dict itself."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'Checkpoint {filename!r} holds a {type(checkpoint).__name__}, '
                        'expected a dict of tensors or a dict with a "state_dict" entry.')
    for key in ('state_dict', 'model'):
        inner = checkpoint.get(key)
        if isinstance(inner, dict) and any(torch.is_tensor(v) for v in inner.values()):
            return inner
    if any(torch.is_tensor(v) for v in checkpoint.values()):
        return checkpoint
    raise KeyError(f'No weights found in checkpoint {filename!r}: expected a "state_dict" or '
                   f'"model" entry, or a bare dict of tensors; top-level keys are '
                   f'{sorted(map(str, checkpoint))[:_LIST_LIMIT]}.')


def revise_state_dict(state_dict, revise_keys=DEFAULT_REVISE_KEYS):
    """Apply ``(pattern, replacement)`` regex pairs to every key, keeping ``_metadata``."""
    metadata = getattr(state_dict, '_metadata', None)
    revised = OrderedDict(state_dict)
    for pattern, replacement in revise_keys or ():
        revised = OrderedDict((re.sub(pattern, replacement, k), v) for k, v in revised.items())
    if metadata is not None:
        revised._metadata = metadata
    return revised


def _short_list(keys):
    keys = list(keys)
    text = ', '.join(keys[:_LIST_LIMIT])
    if len(keys) > _LIST_LIMIT:
        text += f', ... and {len(keys) - _LIST_LIMIT} more'
    return text


def _prefix_hint(missing, unexpected):
    """Suggest a ``revise_keys`` when unexpected keys are missing keys under a prefix."""
    missing = set(missing)
    for key in unexpected:
        parts = key.split('.')
        for cut in range(1, len(parts)):
            prefix = '.'.join(parts[:cut]) + '.'
            if key[len(prefix):] in missing:
                return (f' The unexpected keys look like the model\'s keys under the prefix '
                        f'{prefix!r}: pass revise_keys=[(r"^{re.escape(prefix)}", "")].')
        for miss in missing:
            if miss.endswith('.' + key):
                prefix = miss[:-len(key)]
                return (f' The model expects the checkpoint\'s keys under the prefix {prefix!r}: '
                        f'pass revise_keys=[(r"^", "{prefix}")].')
    return ''


def compare_state_dict(model, state_dict):
    """``(missing, unexpected, shape_mismatches)`` of ``state_dict`` against ``model``.

    BatchNorm's ``num_batches_tracked`` is not required (old checkpoints lack it, as MMEngine
    accepts); each shape mismatch is ``(key, checkpoint_shape, model_shape)``.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
              if k in own and torch.is_tensor(v) and tuple(v.shape) != tuple(own[k].shape)]
    return missing, unexpected, shapes


def mismatch_message(model, filename, missing, unexpected, shapes):
    lines = [f'Checkpoint {filename!r} does not fit {type(model).__name__}:']
    if missing:
        lines.append(f'  {len(missing)} missing key(s) (in the model, not in the checkpoint): '
                     f'{_short_list(missing)}')
    if unexpected:
        lines.append(f'  {len(unexpected)} unexpected key(s) (in the checkpoint, not in the '
                     f'model): {_short_list(unexpected)}')
    if shapes:
        lines.append(f'  {len(shapes)} shape mismatch(es): ' + _short_list(
            f'{k}: checkpoint {list(c)} vs model {list(m)}' for k, c, m in shapes))
    lines.append('Check that the config builds the architecture this checkpoint was trained '
                 'with.' + _prefix_hint(missing, unexpected))
    return '\n'.join(lines)


def load_state_dict_checked(model, state_dict, strict=True, filename='<state_dict>',
                            logger='current'):
    """Copy ``state_dict`` into ``model``; strict raises :class:`CheckpointMismatchError`.

    With ``strict=False`` the mismatch is logged as a warning and every key whose shape fits
    is loaded (mis-shaped ones are skipped), as MMEngine's ``load_state_dict`` does.
    """
    if is_model_wrapper(model):
        model = model.module
    missing, unexpected, shapes = compare_state_dict(model, state_dict)
    if missing or unexpected or shapes:
        message = mismatch_message(model, filename, missing, unexpected, shapes)
        if strict:
            raise CheckpointMismatchError(message, missing, unexpected, shapes)
        print_log(message, logger=logger, level=logging.WARNING)
    bad = {k for k, _, _ in shapes}
    fitting = OrderedDict((k, v) for k, v in state_dict.items() if k not in bad)
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        fitting._metadata = metadata
    model.load_state_dict(fitting, strict=False)
    return missing, unexpected, shapes


def load_checkpoint_safe(model, filename, map_location='cpu', strict=True,
                         revise_keys=DEFAULT_REVISE_KEYS, logger='current'):
    """Load ``filename`` (local path or URL) into ``model`` with ``weights_only=True``.

    Args:
        model (nn.Module): receives the weights (a DDP-style wrapper is unwrapped).
        filename (str): local file, ``http(s)://`` URL (cached in torch's hub dir) or any
            MMEngine scheme (``torchvision://``, ``open-mmlab://``, ...).
        map_location: as in ``torch.load``; ``'cpu'`` by default.
        strict (bool): raise :class:`CheckpointMismatchError` naming the missing, unexpected
            and mis-shaped keys. With ``False``, warn and load what fits.
        revise_keys: ``(regex, replacement)`` pairs applied to the keys before loading;
            the default strips a DataParallel ``module.`` prefix.

    Returns:
        dict: the whole checkpoint (``meta`` and all), as MMEngine's ``load_checkpoint``.
    """
    checkpoint = load_checkpoint_file(filename, map_location=map_location)
    state_dict = revise_state_dict(extract_state_dict(checkpoint, filename), revise_keys)
    load_state_dict_checked(model, state_dict, strict=strict, filename=filename, logger=logger)
    return checkpoint
