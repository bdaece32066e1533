"""Export the student of a distiller checkpoint as an ordinary task checkpoint.

The result is what the task repo's own tools expect from a released model, loadable with the
student's config alone (``mmdet.apis.init_detector``, ``mmseg.apis.init_model``,
``mmpretrain.get_model`` / ``ImageClassificationInferencer``, ``load_from=``):

- ``state_dict``: the distiller's ``student.*`` weights with the prefix stripped;
- ``meta``: ``dataset_meta`` (classes, palette: read by those APIs), ``epoch`` / ``iter`` /
  ``seed`` / ``experiment_name`` / ``mmengine_version``, the student's config text when
  ``config`` is given, and where it came from under ``meta['mmdiffkd']``;
- no optimizer, schedulers, message hub, teacher or distillation-loss modules.

Like OpenMMLab's ``publish_model.py`` the file name gets the first 8 hex digits of its sha256
(``name-1a2b3c4d.pth``), the convention ``torch.hub`` checks with ``check_hash=True``. The file
is written atomically (temporary file, fsync, rename), so a crash never leaves a half-written
release under its final name.
"""
import hashlib
import os.path as osp
from collections import OrderedDict

import torch
from mmengine.config import Config

from mmdiffkd.utils.builder import build_model_in_scope, infer_scope
from mmdiffkd.utils.checkpoint import (extract_state_dict, load_checkpoint_file,
                                       load_state_dict_checked)

from .atomic import atomic_write_bytes, torch_save_bytes

STUDENT_PREFIX = 'student.'
KEPT_META = ('dataset_meta', 'epoch', 'iter', 'seed', 'experiment_name', 'mmengine_version',
             'time')


def student_state_dict(state_dict, source='<checkpoint>'):
    """The ``student.*`` entries with the prefix stripped (an error if there are none)."""
    student = OrderedDict((k[len(STUDENT_PREFIX):], v) for k, v in state_dict.items()
                          if k.startswith(STUDENT_PREFIX))
    if not student:
        heads = sorted({k.split('.', 1)[0] for k in state_dict})
        raise ValueError(f'{source!r} has no "student.*" weights, so it is not a distiller '
                       f'checkpoint; its keys start with {heads[:10]}. A plain model checkpoint '
                       'needs no export: load it directly.')
    return student


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def build_student_from_config(config):
    """The student model from its own config file (in the config's registry scope)."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    model_cfg = cfg.model
    scope = infer_scope(model_cfg, cfg.get('default_scope'), 'student')
    return build_model_in_scope(model_cfg, scope), cfg


def export_student(in_file, out_file, config=None, hash_suffix=True, plain=False):
    """Write the student of ``in_file`` to ``out_file`` (+ sha256 suffix); return the path.

    Args:
        in_file (str): a distiller checkpoint (path or URL), loaded with ``weights_only=True``.
        out_file (str): ``name.pth``; the written file is ``name-<sha256[:8]>.pth``.
        config (str | Config, optional): the student's own config. When given, the student is
            built from it and the weights are loaded strictly, so a mismatch fails here and
            not in the user's ``init_detector``; its text is stored as ``meta['cfg']``.
        hash_suffix (bool): append the sha256 prefix to the file name.
        plain (bool): ``in_file`` is a plain model checkpoint (a teacher or a student trained
            alone): keep all its weights instead of the ``student.*`` ones.
    """
    checkpoint = load_checkpoint_file(in_file, map_location='cpu')
    state_dict = extract_state_dict(checkpoint, in_file)
    if not plain:
        state_dict = student_state_dict(state_dict, in_file)
    state_dict = OrderedDict((k, v.detach().cpu().clone() if torch.is_tensor(v) else v)
                             for k, v in state_dict.items())
    old_meta = checkpoint.get('meta') or {}
    meta = {k: old_meta[k] for k in KEPT_META if k in old_meta}
    meta['mmdiffkd'] = dict(exported_from=osp.basename(str(in_file)),
                            dropped=sorted(k for k in checkpoint
                                           if k not in ('state_dict', 'meta')))
    if config is not None:
        model, cfg = build_student_from_config(config)
        load_state_dict_checked(model, state_dict, strict=True, filename=str(in_file))
        meta['cfg'] = cfg.pretty_text
    if not out_file.endswith('.pth'):
        raise ValueError(f'out_file {out_file!r} must end with .pth.')
    data = torch_save_bytes(dict(state_dict=state_dict, meta=meta))
    final = out_file
    if hash_suffix:
        final = f'{out_file[:-len(".pth")]}-{hashlib.sha256(data).hexdigest()[:8]}.pth'
    atomic_write_bytes(final, data)  # temporary file, fsync, rename: never half-written
    return final
