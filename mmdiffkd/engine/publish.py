"""Publish a finished MMEngine work dir as a model-zoo release, the OpenMMLab way.

From the work dir of a finished run (the config the Runner dumped, ``last_checkpoint`` or a given
checkpoint, ``<timestamp>/<timestamp>.log`` and ``<timestamp>/vis_data/scalars.json``) a release
folder ``<out>/<name>/`` is written:

- ``<name>_<YYYYMMDD>-<sha256[:8]>.pth``: the student exported by :func:`export_student`
  (no optimizer, teacher or distillation modules), loaded strictly into the config below first;
  a plain run (a teacher, a student alone) is exported whole;
- ``<name>.py``: the student's config, standalone (the run's config with the distiller's
  ``model`` replaced by the student's, no ``_base_``, no teacher, no ``work_dir``);
- ``<name>_<timestamp>.log`` and ``<name>_<timestamp>.json``: the training log and the logged
  scalars the metrics are read from;
- ``metafile.yml``: the model entry in OpenMMLab's model-index format (plus its collection, so
  the file validates alone). Metrics are read from the log, never typed.

Everything is written into a hidden staging folder first and renamed into place at the end; on
any error the staging folder is removed, so no partial release is left behind.
"""
import glob
import json
import os
import os.path as osp
import re
import shutil
import tempfile

import torch
from mmengine.config import Config

from mmdiffkd.utils.builder import infer_scope, load_model_spec
from mmdiffkd.utils.checkpoint import CheckpointMismatchError

from .export import export_student, sha256_of
from .metafile import (TASKS, dump_yaml, fsync_dir, load_index, metafile_with_model,
                       metric_name, metric_value, write_atomic)
from .nonfinite import finite_wrapper_type

DISTILLER_TYPES = ('mmdiffkd.Distiller', 'Distiller')
TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')
# Dataset name per config folder of this repository (``configs/<folder>/``).
DATASETS = {'fashion_mnist': 'Fashion-MNIST', 'scenes': 'Texture Scenes', 'coco': 'COCO',
            'cityscapes': 'Cityscapes', 'imagenet': 'ImageNet-1k'}
# Hooks that only make sense with a distiller (they are dropped from the student's config).
DISTILLATION_HOOKS = ('mmdiffkd.TeacherValHook', 'TeacherValHook')


class PublishError(ValueError):
    """A work dir or an option that cannot be published, with what is missing and the fix."""


def is_distiller(model_cfg):
    return isinstance(model_cfg, dict) and model_cfg.get('type') in DISTILLER_TYPES


# ---- reading the work dir ------------------------------------------------------------------------

def read_scalars(path):
    """The rows of an MMEngine ``scalars.json`` (one JSON object per line)."""
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise PublishError(f'{path}, line {number}: not JSON ({e}).') from e
    return rows


def _is_train_row(row):
    return 'lr' in row or any(k == 'loss' or k.startswith('loss_') for k in row)


def find_run(work_dir):
    """The latest training run of ``work_dir``: ``dict(timestamp, log, scalars, config)``.

    MMEngine's Runner writes ``<work_dir>/<YYYYMMDD_HHMMSS>/<YYYYMMDD_HHMMSS>.log`` and (with a
    ``LocalVisBackend``) ``vis_data/scalars.json`` and ``vis_data/config.py`` per run; runs of
    ``tools/test.py`` in the same folder write no ``scalars.json`` and are skipped.
    """
    if not osp.isdir(work_dir):
        raise PublishError(f'work dir {work_dir!r} does not exist.')
    stamps = sorted(d for d in os.listdir(work_dir)
                    if TIMESTAMP.match(d) and osp.isdir(osp.join(work_dir, d)))
    seen = []
    for stamp in reversed(stamps):
        log = osp.join(work_dir, stamp, f'{stamp}.log')
        scalars = osp.join(work_dir, stamp, 'vis_data', 'scalars.json')
        if not (osp.isfile(log) and osp.isfile(scalars)):
            seen.append(f'{stamp}/ (log: {"yes" if osp.isfile(log) else "no"}, '
                        f'vis_data/scalars.json: {"yes" if osp.isfile(scalars) else "no"})')
            continue
        config = osp.join(work_dir, stamp, 'vis_data', 'config.py')
        return dict(timestamp=stamp, log=log, scalars=scalars,
                    config=config if osp.isfile(config) else None)
    raise PublishError(
        f'work dir {work_dir!r} has no training log: expected a run folder <YYYYMMDD_HHMMSS>/ '
        'with <YYYYMMDD_HHMMSS>.log and vis_data/scalars.json (MMEngine\'s LoggerHook and a '
        'LocalVisBackend write them; keep vis_backends=[dict(type="LocalVisBackend")] in the '
        f'config). Run folders found: {seen or "none"}.')


def find_checkpoint(work_dir, checkpoint=None):
    """``checkpoint`` if given (it must exist), else the file ``last_checkpoint`` names."""
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise PublishError(f'checkpoint {checkpoint!r} does not exist.')
        return checkpoint
    pointer = osp.join(work_dir, 'last_checkpoint')
    found = sorted(osp.basename(p) for p in glob.glob(osp.join(work_dir, '*.pth')))
    if not osp.isfile(pointer):
        hint = (f'pass --checkpoint with one of {found}' if found else
                'train with a CheckpointHook that saves (default_hooks.checkpoint with '
                'interval > 0 or save_last=True)')
        raise PublishError(f'work dir {work_dir!r} has no checkpoint: no "last_checkpoint" file '
                           f'(MMEngine\'s CheckpointHook writes it) and .pth files {found}; '
                           f'{hint}.')
    with open(pointer) as f:
        path = f.read().strip()
    if osp.isfile(path):
        return path
    moved = osp.join(work_dir, osp.basename(path))  # the work dir was moved or copied
    if osp.isfile(moved):
        return moved
    raise PublishError(f'{pointer} names {path!r}, which does not exist (nor {moved!r}); '
                       f'.pth files in the work dir: {found}. Pass --checkpoint.')


def find_dumped_config(work_dir, run):
    """The run's config (``vis_data/config.py``, else the single ``*.py`` the Runner dumped)."""
    dumped = sorted(glob.glob(osp.join(work_dir, '*.py')))
    if run['config'] is not None:
        return run['config'], dumped
    if len(dumped) == 1:
        return dumped[0], dumped
    raise PublishError(f'work dir {work_dir!r}: run {run["timestamp"]} has no '
                       f'vis_data/config.py and the work dir has {len(dumped)} dumped configs '
                       f'{[osp.basename(p) for p in dumped]}; expected exactly one.')


def last_metrics(rows, keys, source, prefix=''):
    """``{key: (value, row)}`` from the last row logging ``prefix + key`` (the final val)."""
    found = {}
    for key in keys:
        for row in reversed(rows):
            if prefix + key in row:
                found[key] = (row[prefix + key], row)
                break
    missing = [k for k in keys if k not in found]
    if missing:
        logged = sorted({k for r in rows if not _is_train_row(r) for k in r}
                        - {'step', 'time', 'data_time', 'epoch', 'iter', 'memory'})
        raise PublishError(f'{source} logs no {[prefix + k for k in missing]}; the validation '
                           f'keys it logs are {logged}. Pass --metric with one of them.')
    return found


def work_dir_metrics(work_dir, keys, role):
    """The final validation metrics of another work dir (the teacher's, the student alone's)."""
    try:
        run = find_run(work_dir)
    except PublishError as e:
        raise PublishError(f'{role} work dir: {e}') from None
    rows = read_scalars(run['scalars'])
    found = last_metrics(rows, keys, f'{role} work dir {work_dir!r} ({run["scalars"]})')
    return {metric_name(k): metric_value(k, v) for k, (v, _) in found.items()}


def world_size_from_log(log):
    """``GPU number`` of the Runner's environment block (its world size), or None."""
    with open(log, errors='replace') as f:
        for line in f:
            match = re.search(r'GPU number: (\d+)', line)
            if match:
                return int(match.group(1))
    return None


# ---- configs ---------------------------------------------------------------------------------

def repo_path(path, repo):
    """``path`` relative to ``repo`` when inside it, ``pkg::...`` kept, else the unique
    ``configs/**`` file of its name, else its file name (a metafile never names a path of the
    machine that published it)."""
    if '::' in path:
        return path
    full = osp.abspath(path)
    if repo is not None and full.startswith(osp.abspath(repo) + os.sep):
        return osp.relpath(full, repo)
    # a run trained from another checkout: the config of that name in this one, when unique
    found = find_training_config(osp.basename(path), repo)
    return osp.relpath(found, repo) if found else osp.basename(path)


def find_training_config(name, repo):
    """``configs/**/<name>`` in the repository, or None."""
    if repo is None:
        return None
    hits = sorted(glob.glob(osp.join(repo, 'configs', '**', name), recursive=True))
    return hits[0] if len(hits) == 1 else None


def student_own_config(config):
    """The first config in ``config``'s ``_base_`` chain whose model is not a distiller: the
    student's own experiment (a local path or ``pkg::...``), or None."""
    todo = [config]
    while todo:
        current = todo.pop(0)
        for base in Config._get_base_files(current):
            if '::' in base:
                return base
            path = osp.normpath(osp.join(osp.dirname(current), base))
            model = Config.fromfile(path).get('model')
            if model is None:
                continue
            if not is_distiller(model):
                return path
            todo.append(path)
    return None


def student_config_dict(cfg):
    """The standalone config dict of the student of distillation config ``cfg`` (or of a plain
    run): the distiller's ``model`` replaced by the student's model dict in its own scope,
    without the teacher's top-level variables, distillation hooks and ``work_dir``."""
    data = cfg.to_dict()
    data.pop('work_dir', None)
    if data.get('load_from') is not None:
        data['load_from'] = None
    if data.get('resume'):
        data['resume'] = False
    hooks = [h for h in data.get('custom_hooks') or []
             if not (isinstance(h, dict) and h.get('type') in DISTILLATION_HOOKS)]
    if 'custom_hooks' in data:
        data['custom_hooks'] = hooks
    model = data['model']
    if not is_distiller(model):
        return data, infer_scope(model, data.get('default_scope'), 'model')
    student, file_scope, _ = load_model_spec(model['student'], 'student')
    student = student.to_dict() if hasattr(student, 'to_dict') else dict(student)
    preprocessor = model.get('data_preprocessor')
    if isinstance(preprocessor, dict) and 'type' not in preprocessor:
        student.setdefault('data_preprocessor', preprocessor)  # as the Distiller does
    teacher = model.get('teacher')
    teacher_strings = set()
    if isinstance(teacher, str):
        teacher_strings.add(teacher)
    elif isinstance(teacher, dict):
        teacher_strings |= {v for v in teacher.values() if isinstance(v, str)}
    for key in [k for k, v in data.items()
                if k.startswith('teacher') or (isinstance(v, str) and v in teacher_strings)]:
        data.pop(key)
    scope = infer_scope(student, file_scope or data.get('default_scope'), 'student')
    data['model'] = student
    if scope:
        data['default_scope'] = scope
    return data, scope


def teacher_description(model_cfg, repo):
    """``(name, config)`` of the distiller's teacher (config None for an inline model dict)."""
    teacher = model_cfg.get('teacher')
    config = teacher if isinstance(teacher, str) else (teacher or {}).get('config')
    if isinstance(config, str):
        name = osp.splitext(osp.basename(config.split('::')[-1]))[0]
        return name, repo_path(config, repo)
    if isinstance(config, dict):
        return str(config.get('type', 'teacher')), None
    return 'teacher', None


def loss_types(model_cfg):
    """The loss types of the distiller's declarations, in order, without the scope prefix."""
    types = []
    for decl in (model_cfg.get('distill_losses') or {}).values():
        loss = decl.get('loss', {})
        name = loss.get('type', '?') if isinstance(loss, dict) else type(loss).__name__
        name = name.split('.')[-1]
        if name not in types:
            types.append(name)
    return types


def choose_collection(losses, collections, given=None):
    if given is not None:
        if given not in collections:
            raise PublishError(f'--collection {given!r} is not a collection of model-index.yml;'
                               f' valid: {sorted(collections)}.')
        return given
    found = [t for t in losses if t in collections]
    if len(found) == 1:
        return found[0]
    raise PublishError(f'the distillation losses {losses} belong to the collections {found}; '
                       f'pass --collection with one of {found or sorted(collections)}.')


def distillation_metadata(cfg, config, repo, rows, scalars, metrics, teacher_work_dir,
                          student_work_dir, student_type):
    """``Metadata: Student`` and ``Teacher`` of a distilled run: names, configs, metrics."""
    own = student_own_config(config)
    student_meta = {'Name': osp.splitext(osp.basename(own.split('::')[-1]))[0]
                    if own else student_type}
    if own:
        student_meta['Config'] = repo_path(own, repo)
    if student_work_dir:
        student_meta['Metrics'] = work_dir_metrics(student_work_dir, metrics, 'student')
    teacher_name, teacher_config = teacher_description(cfg.model, repo)
    teacher_meta = {'Name': teacher_name}
    if teacher_config:
        teacher_meta['Config'] = teacher_config
    if teacher_work_dir:
        teacher_meta['Metrics'] = work_dir_metrics(teacher_work_dir, metrics, 'teacher')
        return student_meta, teacher_meta
    missing = [k for k in metrics if not any(f'teacher/{k}' in r for r in rows)]
    if missing:
        raise PublishError(
            f'the teacher\'s {missing} is needed and {scalars} has no '
            f'{["teacher/" + k for k in missing]}: pass --teacher-work-dir with the teacher\'s '
            'work dir, or train with custom_hooks=[dict(type="mmdiffkd.TeacherValHook")], '
            'which logs it.')
    logged = last_metrics(rows, metrics, scalars, prefix='teacher/')
    teacher_meta['Metrics'] = {metric_name(k): metric_value(k, v)
                               for k, (v, _) in logged.items()}
    return student_meta, teacher_meta


# ---- publishing ------------------------------------------------------------------------------

# the parts of a config compared with the run's dumped config for `Config Changes`; keys whose
# values are the publishing machine's (paths, workers) are not changes (the seed has its field)
CHANGE_ROOTS = ('model', 'train_cfg', 'train_dataloader', 'val_dataloader', 'val_evaluator',
                'optim_wrapper', 'param_scheduler')
CHANGE_IGNORED = ('data_root', 'work_dir', 'checkpoint', 'num_workers', 'persistent_workers')


def _flatten(value, prefix, out):
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f'{prefix}.{k}' if prefix else str(k), out)
    elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple))
                                                  for v in value):
        for i, v in enumerate(value):
            _flatten(v, f'{prefix}.{i}', out)
        out[f'{prefix}.#'] = len(value)
    else:
        out[prefix] = list(value) if isinstance(value, tuple) else value


def _is_path(value):
    return isinstance(value, str) and (os.sep in value or value.endswith(('.py', '.pth')))


def config_changes(run_cfg, config):
    """``{dotted key: the run's value}`` wherever the run's dumped config differs from the
    training ``config`` file in what makes the model (``CHANGE_ROOTS``): the ``--cfg-options``
    a benchmark or a user passed (a shorter schedule, a data subset, other loss weights), so the
    entry says what was trained. File paths and where things are written are left out."""
    ran, declared = {}, {}
    ref = Config.fromfile(config)
    for root in CHANGE_ROOTS:
        _flatten(run_cfg.get(root), root, ran)
        _flatten(ref.get(root), root, declared)
    changes = {}
    for key in sorted(set(ran) | set(declared)):
        if key.split('.')[-1] in CHANGE_IGNORED:
            continue
        new, old = ran.get(key), declared.get(key)
        if new == old or (_is_path(new) and (old is None or _is_path(old))):
            continue
        if key == 'optim_wrapper.type' and new == finite_wrapper_type(old or 'OptimWrapper'):
            continue  # tools/train.py's NaN guard around the same optimizer step
        if not isinstance(new, (bool, int, float, str, list, type(None))):
            new = repr(new)
        changes[key] = new
    return changes


def _copy_file(src, dst):
    with open(src, 'rb') as fin, open(dst, 'wb') as fout:
        shutil.copyfileobj(fin, fout)
        fout.flush()
        os.fsync(fout.fileno())


def _fsync_file(path):
    with open(path, 'rb') as f:
        os.fsync(f.fileno())


def publish(work_dir, out='release', *, repo=None, checkpoint=None, config=None, name=None,
            metrics=None, task=None, dataset=None, collection=None, teacher_work_dir=None,
            student_work_dir=None, student_config=None, url_prefix=None, metafile=None,
            world_size=None, overwrite=False):
    """Publish ``work_dir``; returns ``dict(folder, checkpoint, config, entry)``.

    Args:
        work_dir (str): the finished run's work dir.
        out (str): the release root; the release is ``<out>/<name>/``.
        repo (str, optional): the repository root: the training config is looked up in its
            ``configs/``, paths in the entry are written relative to it, and the collections
            are read from its ``model-index.yml``.
        checkpoint (str, optional): defaults to the one ``last_checkpoint`` names.
        config (str, optional): the training config file (for its name, ``_base_`` chain and
            folder); defaults to ``configs/**/<name of the config the Runner dumped>``.
        name (str, optional): the model name; defaults to the training config's name.
        metrics (list[str], optional): log keys, the first one the main metric; defaults to
            the task's (``accuracy/top1``, ``coco/bbox_mAP``, ``mIoU``).
        task, dataset (str, optional): the entry's task and dataset; defaults from the model's
            scope and the config folder.
        collection (str, optional): the method; defaults to the one the loss types name.
        teacher_work_dir, student_work_dir (str, optional): work dirs of the teacher's and the
            student-alone's runs, whose final metrics go into ``Metadata``. The teacher's may
            instead be logged by ``mmdiffkd.TeacherValHook`` in this run (``teacher/<key>``).
        student_config (str, optional): the student's config to publish instead of the one
            derived from the run's config (it must fit the checkpoint strictly).
        url_prefix (str, optional): where the release folder's files will be downloaded from;
            defaults to the release folder relative to ``repo`` (or to ``out`` outside it).
        metafile (str, optional): a ``configs/<folder>/metafile.yml`` to add the entry to.
        world_size (int, optional): processes the run trained on; read from the log when
            omitted (its ``GPU number``).
        overwrite (bool): replace an existing release folder and metafile entry of this name.
    """
    run = find_run(work_dir)
    checkpoint = find_checkpoint(work_dir, checkpoint)
    run_config, dumped = find_dumped_config(work_dir, run)
    cfg = Config.fromfile(run_config)
    distilled = is_distiller(cfg.get('model'))

    if config is None and len(dumped) == 1:
        config = find_training_config(osp.basename(dumped[0]), repo)
    if config is not None and not osp.isfile(config):
        raise PublishError(f'--config {config!r} does not exist.')
    if name is None:
        if config is not None:
            name = osp.splitext(osp.basename(config))[0]
        elif len(dumped) == 1:
            name = osp.splitext(osp.basename(dumped[0]))[0]
        else:
            raise PublishError(f'cannot name the model: the work dir has {len(dumped)} dumped '
                               'configs; pass --name or --config.')
    if not re.match(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$', name):
        raise PublishError(f'name {name!r}: use letters, digits, "_", "-" and "." only.')
    folder = osp.join(out, name)
    if osp.exists(folder) and not overwrite:
        raise PublishError(f'release folder {folder!r} exists; pass --overwrite to replace it '
                           'or --name to publish under another name.')

    # what the entry says, all checked before anything is written
    data, scope = student_config_dict(cfg)
    if task is None:
        if scope not in TASKS:
            raise PublishError(f'the model is built in scope {scope!r}, which has no known task'
                               f' (known: {sorted(TASKS)}); pass --task, e.g. '
                               '"Image Classification".')
        task = TASKS[scope][0]
    if not metrics:
        if scope not in TASKS:
            raise PublishError(f'no default metric for scope {scope!r}; pass --metric with a '
                               'key of the log.')
        metrics = [TASKS[scope][1]]
    rows = read_scalars(run['scalars'])
    found = last_metrics(rows, metrics, f'the training log {run["scalars"]}')
    results = {metric_name(k): metric_value(k, v) for k, (v, _) in found.items()}
    if dataset is None:
        folder_name = (osp.basename(osp.dirname(osp.abspath(config))) if config else None)
        if folder_name not in DATASETS:
            raise PublishError(f'cannot tell the dataset from the config folder {folder_name!r}'
                               f' (known: {DATASETS}); pass --dataset.')
        dataset = DATASETS[folder_name]
    train_cfg = cfg.get('train_cfg') or {}
    by_epoch = bool(train_cfg.get('by_epoch', 'max_epochs' in train_cfg)) and \
        'max_iters' not in train_cfg
    if world_size is None:
        world_size = world_size_from_log(run['log'])
        if world_size is None:
            raise PublishError(f'{run["log"]} has no "GPU number" line (MMEngine logs its world'
                               ' size there); pass --world-size.')
    batch = (cfg.get('train_dataloader') or {}).get('batch_size')
    if batch is None:
        raise PublishError(f'{run_config} has no train_dataloader.batch_size.')

    metadata = {'Training Data': dataset}
    repo_index = osp.join(repo, 'model-index.yml') if repo else None
    collections = load_index(repo_index)['collections'] if repo_index and \
        osp.isfile(repo_index) else {}
    in_collection = None
    if distilled:
        losses = loss_types(cfg.model)
        in_collection = choose_collection(losses, collections, collection)
        if config is None:
            dumped_names = [osp.basename(p) for p in dumped]
            raise PublishError(f'cannot find the training config {dumped_names} under configs/ '
                               '(its _base_ chain names the student\'s own config); pass '
                               '--config with the training config file.')
        student_meta, teacher_meta = distillation_metadata(
            cfg, config, repo, rows, run['scalars'], metrics, teacher_work_dir,
            student_work_dir, str(data['model'].get('type')))
        metadata['Distillation Losses'] = losses
        metadata['Student'] = student_meta
        metadata['Teacher'] = teacher_meta
    elif collection is not None:
        in_collection = choose_collection([], collections, collection)
    if (student_work_dir or teacher_work_dir) and not distilled:
        raise PublishError('--teacher-work-dir and --student-work-dir are for distilled runs '
                           '(their metrics next to the distilled one); this run has no '
                           'distiller.')

    entry_metafile = None
    if metafile is not None:
        entry_metafile = metafile
        if not osp.isdir(osp.dirname(osp.abspath(metafile))):
            raise PublishError(f'--metafile {metafile!r}: its folder does not exist.')
        try:  # a name clash or an unreadable metafile fails before anything is written
            metafile_with_model(metafile, {'Name': name}, replace=overwrite)
        except ValueError as e:
            raise PublishError(str(e)) from None

    os.makedirs(out, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.staging', dir=out)
    try:
        # the student's config, standalone; the export loads the weights strictly into it
        release_config = osp.join(staging, f'{name}.py')
        if student_config is not None:
            own_cfg = Config.fromfile(student_config)
            text = own_cfg.pretty_text
        else:
            text = Config(data).pretty_text
        write_atomic(release_config, text)
        stamp = run['timestamp']
        try:
            exported = export_student(checkpoint,
                                      osp.join(staging, f'{name}_{stamp[:8]}.pth'),
                                      config=release_config, plain=not distilled)
        except CheckpointMismatchError as e:
            which = (f'--student-config {student_config!r}' if student_config else
                     f'the student config derived from the run\'s config {run_config!r}')
            raise CheckpointMismatchError(
                f'{e}\nNothing was published: the released config ({which}) must load the '
                'released weights strictly. Publish the config the run trained (drop '
                '--student-config) or the checkpoint of that config (--checkpoint).',
                e.missing_keys, e.unexpected_keys, e.shape_mismatches) from None
        _fsync_file(exported)
        meta = torch.load(exported, map_location='cpu', weights_only=True).get('meta', {})
        _check_metric_step(found, meta, by_epoch, checkpoint, run['scalars'])
        if by_epoch and meta.get('epoch') is not None:
            metadata['Epochs'] = int(meta['epoch'])
        if meta.get('iter') is not None:
            metadata['Iterations'] = int(meta['iter'])
        metadata['Batch Size'] = int(batch) * int(world_size)
        seed = (cfg.get('randomness') or {}).get('seed')
        if seed is not None:
            metadata['Seed'] = seed
        if config is not None:
            changes = config_changes(cfg, config)
            if changes:
                metadata['Config Changes'] = changes
        log_name = f'{name}_{stamp}.log'
        _copy_file(run['log'], osp.join(staging, log_name))
        _copy_file(run['scalars'], osp.join(staging, f'{name}_{stamp}.json'))

        if url_prefix is None:
            final_abs = osp.abspath(folder)
            if repo and final_abs.startswith(osp.abspath(repo) + os.sep):
                url_prefix = osp.relpath(final_abs, repo)
            else:
                url_prefix = name
        url_prefix = url_prefix.rstrip('/')
        weights = f'{url_prefix}/{osp.basename(exported)}'
        metadata['SHA256'] = sha256_of(exported)
        metadata['Release Config'] = f'{url_prefix}/{name}.py'
        metadata['Training Log'] = f'{url_prefix}/{log_name}'
        entry = {'Name': name}
        if in_collection:
            entry['In Collection'] = in_collection
        entry['Config'] = (repo_path(config, repo) if config and repo and
                           osp.abspath(config).startswith(osp.abspath(repo) + os.sep)
                           else metadata['Release Config'])
        entry['Metadata'] = _ordered_metadata(metadata)
        entry['Results'] = [{'Task': task, 'Dataset': dataset, 'Metrics': results}]
        entry['Weights'] = weights

        release_index = {'Models': [entry]}
        if in_collection and in_collection in collections:
            # the collection too, so the file validates alone (its README path is the repo's)
            col = {k: v for k, v in collections[in_collection].items() if k != 'README'}
            release_index = {'Collections': [col], 'Models': [entry]}
        write_atomic(osp.join(staging, 'metafile.yml'), dump_yaml(release_index))
        new_metafile_text = (metafile_with_model(entry_metafile, entry, replace=overwrite)
                             if entry_metafile else None)
        fsync_dir(staging)

        old = None
        if osp.exists(folder):
            old = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.old', dir=out)
            os.rename(folder, osp.join(old, name))
        os.rename(staging, folder)
        staging = None
        fsync_dir(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if new_metafile_text is not None:
            try:
                write_atomic(entry_metafile, new_metafile_text)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return dict(folder=folder, checkpoint=osp.join(folder, osp.basename(exported)),
                config=osp.join(folder, f'{name}.py'), entry=entry)


def _check_metric_step(found, meta, by_epoch, checkpoint, scalars):
    """The main metric must have been measured on the published checkpoint's weights."""
    key, (_, row) = next(iter(found.items()))
    step = row.get('step')
    expected = meta.get('epoch') if by_epoch else meta.get('iter')
    if not step or expected is None:
        # MMEngine logs validation metrics at step 0 when LoggerHook.log_metric_by_epoch=True
        # in an iteration-based loop: the row does not say when it was measured.
        return
    if int(step) != int(expected):
        unit = 'epoch' if by_epoch else 'iteration'
        raise PublishError(f'{scalars}: the last {key} was measured at {unit} {step}, but the '
                           f'checkpoint {checkpoint!r} is from {unit} {expected}; pass '
                           f'--checkpoint with the {unit}-{step} checkpoint (or validate the '
                           'final one).')


METADATA_ORDER = ('Training Data', 'Epochs', 'Iterations', 'Batch Size', 'Seed',
                  'Config Changes', 'Distillation Losses', 'Teacher', 'Student', 'SHA256',
                  'Release Config', 'Training Log')


def _ordered_metadata(metadata):
    return {k: metadata[k] for k in METADATA_ORDER if k in metadata}
