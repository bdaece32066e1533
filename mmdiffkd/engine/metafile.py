"""OpenMMLab model-index metafiles: metric names, reading the index, adding a model entry.

The format is the one OpenMMLab repos ship and ``mim`` / Papers with Code's ``model-index``
package read: a root ``model-index.yml`` with the ``Collections`` (one per method, with its
paper) and an ``Import`` list of ``configs/<folder>/metafile.yml`` files, each holding
``Models``::

    Models:
      - Name: kd_logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist
        In Collection: KD
        Config: configs/fashion_mnist/kd_logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py
        Metadata: {Training Data: Fashion-MNIST, Epochs: 30, Batch Size: 128, Teacher: ...}
        Results:
          - {Task: Image Classification, Dataset: Fashion-MNIST, Metrics: {Top 1 Accuracy: 87.1}}
        Weights: release/kd_..._fashion-mnist/kd_..._fashion-mnist_20261130-1a2b3c4d.pth

``tools/publish_model.py`` writes the entries (metrics read from the training log),
``tools/model_zoo.py`` renders ``docs/model_zoo.md`` from them.
"""
import os
import os.path as osp
import tempfile

import yaml

# MMEngine log key -> (name in OpenMMLab metafiles, factor). mmdet logs COCO AP in [0, 1] and its
# metafiles write it in percent ("box AP: 37.4"); mmseg and mmpretrain log percent already.
METRICS = {
    'accuracy/top1': ('Top 1 Accuracy', 1.0),
    'accuracy/top5': ('Top 5 Accuracy', 1.0),
    'coco/bbox_mAP': ('box AP', 100.0),
    'coco/bbox_mAP_50': ('box AP@0.5', 100.0),
    'coco/bbox_mAP_75': ('box AP@0.75', 100.0),
    'coco/segm_mAP': ('mask AP', 100.0),
    'mIoU': ('mIoU', 1.0),
    'mAcc': ('mAcc', 1.0),
    'aAcc': ('aAcc', 1.0),
}
# Registry scope of the published model -> (task name, default metric key in the log).
TASKS = {
    'mmpretrain': ('Image Classification', 'accuracy/top1'),
    'mmdet': ('Object Detection', 'coco/bbox_mAP'),
    'mmseg': ('Semantic Segmentation', 'mIoU'),
}
DECIMALS = 2  # metric values are rounded to this many decimals, as OpenMMLab metafiles show them


def metric_name(key):
    """The metafile name of the log key ``key`` (unknown keys keep their log name)."""
    return METRICS.get(key, (key, 1.0))[0]


def metric_value(key, raw):
    """The metafile value of ``raw`` logged under ``key`` (percent, ``DECIMALS`` decimals)."""
    return round(float(raw) * METRICS.get(key, (key, 1.0))[1], DECIMALS)


def write_atomic(path, data):
    """Write ``data`` (str or bytes) to ``path`` through a temporary file in the same folder,
    flushed to disk, then renamed over ``path``: a reader sees the old file or the new one."""
    folder = osp.dirname(osp.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(folder)


def fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dump_yaml(data):
    """YAML text in the metafiles' style (keys in the given order, block style)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False,
                          width=100)


def _read_yaml(path):
    with open(path) as f:
        data = yaml.safe_load(f)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a mapping with Models / Collections / Import, got '
                         f'{type(data).__name__}.')
    return data


def load_index(index_file):
    """The collections and models of ``index_file`` (a ``model-index.yml``) and of every file
    its ``Import`` names (paths relative to the index's folder).

    Returns:
        dict: ``collections`` (name -> collection dict), ``models`` (list of
        ``(metafile path, model dict)``), ``metafiles`` (the imported paths, in order).
    """
    root = _read_yaml(index_file)
    folder = osp.dirname(osp.abspath(index_file))
    collections, models, metafiles = {}, [], []
    sources = [(index_file, root)]
    for rel in root.get('Import') or []:
        path = osp.join(folder, rel)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{index_file} imports {rel!r}, which does not exist.')
        metafiles.append(path)
        sources.append((path, _read_yaml(path)))
    for path, data in sources:
        for col in data.get('Collections') or []:
            if col['Name'] in collections:
                raise ValueError(f'Collection {col["Name"]!r} is defined twice ({path}).')
            collections[col['Name']] = col
        for model in data.get('Models') or []:
            models.append((path, model))
    names = [m['Name'] for _, m in models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f'Model names must be unique across the index; repeated: {twice}.')
    return dict(collections=collections, models=models, metafiles=metafiles)


METAFILE_HEADER = ('# Model entries written by tools/publish_model.py (metrics read from the '
                   'training logs);\n# docs/model_zoo.md is generated from them by '
                   'tools/model_zoo.py.\n')


def metafile_with_model(metafile, entry, replace=False):
    """The text of ``metafile`` with ``entry`` added (or replacing the model of the same name
    when ``replace``); the file is not written. A missing file starts empty."""
    data = _read_yaml(metafile) if osp.isfile(metafile) else {}
    models = list(data.get('Models') or [])
    names = [m.get('Name') for m in models]
    if entry['Name'] in names:
        if not replace:
            raise ValueError(f'{metafile} already has a model named {entry["Name"]!r}; pass '
                             '--overwrite to replace it, or --name to publish under another '
                             'name (e.g. with a _seed1 suffix).')
        models[names.index(entry['Name'])] = entry
    else:
        models.append(entry)
    data['Models'] = models
    return METAFILE_HEADER + dump_yaml(data)
