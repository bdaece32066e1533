"""Tiny models and batches shared by the distiller tests (and other helpers' tests).

``ToyClassifier`` needs only torch + MMEngine: a two-stage conv net with a linear head, the
same ``forward(inputs, data_samples, mode)`` contract as mmdet / mmseg / mmpretrain models.
It is registered in MMEngine's root registry (scope ``mmengine``), so the distiller finds it
by searching the known scopes. Real task models live in ``tests/data/configs/``.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.structures import BaseDataElement

CONFIG_DIR = os.path.join(os.path.dirname(__file__), 'data', 'configs')


@ROOT_MODELS.register_module(force=True)
class ToyClassifier(BaseModel):
    """conv(stem) -> stage1 -> stage2 -> pool -> fc; ``width`` scales every layer."""

    def __init__(self, width=8, num_classes=4, in_channels=3, data_preprocessor=None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.stage1 = nn.Sequential(nn.Conv2d(width, width * 2, 3, stride=2, padding=1),
                                    nn.BatchNorm2d(width * 2), nn.ReLU(), nn.Dropout(0.1))
        self.stage2 = nn.Sequential(nn.Conv2d(width * 2, width * 4, 3, stride=2, padding=1),
                                    nn.BatchNorm2d(width * 4), nn.ReLU())
        self.fc = nn.Linear(width * 4, num_classes)

    def features(self, x):
        x = self.stem(x)
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        return s1, s2

    def forward(self, inputs, data_samples=None, mode='tensor'):
        s1, s2 = self.features(inputs)
        logits = self.fc(s2.mean((2, 3)))
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            labels = torch.stack([d.gt_label for d in data_samples])
            return dict(loss_cls=F.cross_entropy(logits, labels))
        for d, row in zip(data_samples, logits):
            d.pred_label = row.argmax()
        return data_samples


def toy_model(width=8, **kwargs):
    return dict(type='ToyClassifier', width=width,
                data_preprocessor=dict(type='ImgDataPreprocessor', mean=[127.5] * 3,
                                       std=[64.0] * 3), **kwargs)


def toy_batch(n=2, size=16, num_classes=4, seed=0):
    """A batch as a dataloader yields it: uint8 images and data samples with labels."""
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
              for _ in range(n)]
    samples = [BaseDataElement(gt_label=torch.randint(0, num_classes, (), generator=g),
                               metainfo=dict(img_shape=(size, size)))
               for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def save_weights(model, path):
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def toy_teacher_checkpoint(path, width=16, seed=1):
    """A ToyClassifier of ``width`` with weights drawn after ``torch.manual_seed(seed)``, saved
    to ``path`` (the global RNG is left seeded, as the tests built on it expect)."""
    torch.manual_seed(seed)
    return save_weights(ROOT_MODELS.build(toy_model(width)), str(path))


class ToyDataset(torch.utils.data.Dataset):
    """Deterministic images whose label is the brightest quadrant (learnable in a few steps)."""

    def __init__(self, n=8, size=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            label = int(torch.randint(0, 4, (), generator=g))
            img = torch.randint(0, 100, (3, size, size), generator=g, dtype=torch.uint8)
            h = size // 2
            r, c = divmod(label, 2)
            img[:, r * h:(r + 1) * h, c * h:(c + 1) * h] += 120
            self.items.append((img, label))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        img, label = self.items[i]
        return dict(inputs=img.clone(), data_samples=BaseDataElement(
            gt_label=torch.tensor(label), metainfo=dict(img_shape=tuple(img.shape[1:]))))


try:
    from mmengine.evaluator import BaseMetric
    from mmengine.registry import METRICS as ROOT_METRICS

    @ROOT_METRICS.register_module(force=True)
    class ToyAccuracy(BaseMetric):
        """Top-1 accuracy of ``ToyClassifier`` predictions."""

        def process(self, data_batch, data_samples):
            for d in data_samples:
                self.results.append(float(d['pred_label'] == d['gt_label']))

        def compute_metrics(self, results):
            return dict(accuracy=sum(results) / max(len(results), 1))
except ImportError:  # pragma: no cover
    pass


def toy_loader(n=8, batch_size=2, seed=0):
    return dict(dataset=ToyDataset(n=n, seed=seed), batch_size=batch_size, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='pseudo_collate'))


# ---- tiny data for the real task models (need mmdet / mmseg / mmpretrain, hence mmcv) ----------

class ListDataset(torch.utils.data.Dataset):
    """Items made in memory, with the ``metainfo`` the task metrics read (class names)."""

    def __init__(self, items, metainfo):
        self.items, self.metainfo = items, metainfo

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        inputs, sample = self.items[i]
        return dict(inputs=inputs.clone(), data_samples=sample.clone())


def _boxes_image(g, size, num_classes, n_boxes=2):
    img = torch.randint(0, 60, (3, size, size), generator=g, dtype=torch.uint8)
    boxes, labels, seg = [], [], torch.zeros(size, size, dtype=torch.long)
    for _ in range(n_boxes):
        w, h = (int(v) for v in torch.randint(size // 4, size // 2, (2, ), generator=g))
        x, y = (int(v) for v in torch.randint(0, size - max(w, h), (2, ), generator=g))
        c = int(torch.randint(0, num_classes, (), generator=g))
        img[c % 3, y:y + h, x:x + w] = 200  # the class shows as the box's colour
        boxes.append([x, y, x + w, y + h])
        labels.append(c)
        seg[y:y + h, x:x + w] = c + 1
    return img, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels), seg


def det_dataset(n=4, size=64, num_classes=3, seed=0):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        img, boxes, labels, _ = _boxes_image(g, size, num_classes)
        sample = DetDataSample(metainfo=dict(
            img_id=i, img_path=f'fake_{i}.png', ori_shape=(size, size), img_shape=(size, size),
            scale_factor=(1.0, 1.0),
            instances=[dict(bbox=b.tolist(), bbox_label=int(c), ignore_flag=0)
                       for b, c in zip(boxes, labels)]))
        sample.gt_instances = InstanceData(bboxes=boxes, labels=labels)
        items.append((img, sample))
    return ListDataset(items, dict(classes=tuple(f'c{k}' for k in range(num_classes))))


def seg_dataset(n=4, size=64, num_classes=4, seed=0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        img, _, _, seg = _boxes_image(g, size, num_classes - 1)
        sample = SegDataSample(metainfo=dict(img_path=f'fake_{i}.png', ori_shape=(size, size),
                                             img_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=seg[None])
        items.append((img, sample))
    return ListDataset(items, dict(classes=tuple(f'c{k}' for k in range(num_classes)),
                                   palette=[[k * 40] * 3 for k in range(num_classes)]))


def cls_dataset(n=8, size=32, num_classes=4, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        label = int(torch.randint(0, num_classes, (), generator=g))
        img = torch.randint(0, 100, (3, size, size), generator=g, dtype=torch.uint8)
        h = size // 2
        r, c = divmod(label, 2)
        img[:, r * h:(r + 1) * h, c * h:(c + 1) * h] += 120
        sample = DataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        sample.set_gt_label(label)
        items.append((img, sample))
    return ListDataset(items, dict(classes=tuple(f'c{k}' for k in range(num_classes))))


TASKS = {
    # name: (distillation config, data, metric, student config)
    'retinanet': ('distill/retinanet_r18w_to_r18_diffkd.py', det_dataset,
                  dict(type='mmdet.CocoMetric', metric='bbox', format_only=False),
                  'det/tiny_retinanet_r18.py'),
    'faster_rcnn': ('distill/faster_rcnn_r18w_to_r18_diffkd.py', det_dataset,
                    dict(type='mmdet.CocoMetric', metric='bbox', format_only=False),
                    'det/tiny_faster_rcnn_r18.py'),
    'pspnet': ('distill/pspnet_r18w_to_r18_diffkd.py', seg_dataset,
               dict(type='mmseg.IoUMetric', iou_metrics=['mIoU']), 'seg/tiny_pspnet_r18.py'),
    'resnet': ('distill/resnet18w_to_r18_diffkd.py', cls_dataset,
               dict(type='mmpretrain.Accuracy', topk=(1, )), 'cls/tiny_resnet18.py'),
}


def loader(dataset, batch_size=2):
    return dict(dataset=dataset, batch_size=batch_size, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='pseudo_collate'))


def tiny_mmdet_model(path, width, head_overrides=None):
    """mmdet's own config ``mmdet::<path>`` with a ResNet-18 of base width ``16 * width`` (1/4
    of the real one at width 1) and a slim FPN / head, no pretrained weights, 3 classes."""
    import copy

    from mmengine.config import Config

    from mmdiffkd.utils.builder import resolve_config_path
    model = copy.deepcopy(Config.fromfile(resolve_config_path(f'mmdet::{path}')).model)
    base = 16 * width
    model.backbone.update(depth=18, base_channels=base, init_cfg=None, frozen_stages=-1,
                          norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False)
    model.neck.update(in_channels=[base, base * 2, base * 4, base * 8], out_channels=32 * width)
    model.bbox_head.update(num_classes=3, in_channels=32 * width, feat_channels=32 * width,
                           stacked_convs=1, **(head_overrides or {}))
    model.test_cfg.score_thr = 0.0
    return model


def unscoped(value):
    """``value`` without the ``_scope_`` keys MMEngine adds to ``mmdet::`` / ``mmpretrain::``
    bases (to compare a config with the OpenMMLab config it is built on)."""
    if isinstance(value, dict):
        return {k: unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [unscoped(v) for v in value]
    return value


def teacher_checkpoint(distill_cfg, path, seed=1):
    """Build the teacher of ``distill_cfg`` with seeded random weights and save it (a stand-in
    for a trained teacher: no weights are downloaded in tests)."""
    from mmdiffkd.utils.builder import build_model_in_scope, infer_scope, load_model_spec
    model_cfg, scope, _ = load_model_spec(distill_cfg.model.teacher, 'teacher')
    torch.manual_seed(seed)
    model = build_model_in_scope(model_cfg, infer_scope(model_cfg, scope, 'teacher'))
    return save_weights(model, path)
