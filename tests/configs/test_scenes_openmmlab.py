"""The texture scenes through mmdet and mmseg: datasets, metrics, and one training iteration
plus a val loop for each teacher / student-alone config in configs/scenes/."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image
from helpers import REPO, shrink_scenes_config
from mmengine.config import Config
from mmengine.runner import Runner

from mmdiffkd.datasets.scenes import (FASHION_MNIST_CLASSES, SEG_CLASSES,
                                      SceneSettings, generate_scenes)

mmdet = pytest.importorskip('mmdet', reason='needs mmdet (and mmcv with ops)')
mmseg = pytest.importorskip('mmseg', reason='needs mmsegmentation (and mmcv with ops)')

CONFIGS = osp.join(REPO, 'configs', 'scenes')
# Students run in the default suite (~15-25 s each on the shared 2-core CPU, mostly imports and
# model building); the ResNet-50 teachers take ~30-50 s there, so they are `-m slow`.
DET_CONFIGS = [
    pytest.param('retinanet_r50_fpn_1xb8-6e_scenes.py', marks=pytest.mark.slow),
    'retinanet_r18_fpn_1xb8-6e_scenes.py'
]
SEG_CONFIGS = [
    pytest.param('deeplabv3_r50-d16_1xb8-1k_scenes.py', marks=pytest.mark.slow),
    'deeplabv3_r18-d16_1xb8-1k_scenes.py',
]


@pytest.fixture(scope='module')
def scenes_root(tmp_path_factory):
    out = tmp_path_factory.mktemp('scenes_mm') / 'scenes'
    generate_scenes(str(out), SceneSettings(num_train=2, num_val=2, size=160, seed=0))
    return str(out) + '/'


def _loss(runner):
    return runner.message_hub.get_scalar('train/loss').current()


def _val_metric(runner, key):
    """A metric of the val loop that ran at the end of training (logged as ``val/<key>``)."""
    return runner.message_hub.get_scalar(f'val/{key}').current()


# -- detection ---------------------------------------------------------------------------------

@pytest.mark.parametrize('name', DET_CONFIGS)
def test_detection_config_trains_one_iteration_and_validates(name, scenes_root, tmp_path):
    cfg = shrink_scenes_config(Config.fromfile(osp.join(CONFIGS, name)), scenes_root, tmp_path)
    assert cfg.model.bbox_head.num_classes == 10
    assert cfg.model.backbone.init_cfg is None  # nothing is downloaded
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    cfg.model.test_cfg.score_thr = 0.0  # an untrained model scores below mmdet's 0.05
    runner = Runner.from_cfg(cfg)
    runner.train()  # one iteration (2 images, batch 2), then the val loop with CocoMetric
    assert runner.iter == 1 and np.isfinite(_loss(runner))
    assert 0.0 <= _val_metric(runner, 'coco/bbox_mAP') <= 1.0


def _det_dataset(root, with_mask=False):
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(CONFIGS, '_base_', 'scenes_detection.py'))
    ds = copy.deepcopy(cfg.val_dataloader.dataset)
    ds.data_root = root
    ds.pipeline = [dict(type='LoadImageFromFile'),
                   dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask)]
    return DATASETS.build(ds)


def test_coco_dataset_reads_boxes_and_rle_masks(scenes_root):
    dataset = _det_dataset(scenes_root, with_mask=True)
    assert dataset.metainfo['classes'] == FASHION_MNIST_CLASSES
    assert len(dataset) == 2
    for i in range(2):
        item = dataset[i]
        label_map = np.array(Image.open(item['img_path'].replace('/images/', '/labels/')))
        boxes, labels = item['gt_bboxes'].tensor.numpy(), item['gt_bboxes_labels']
        masks = item['gt_masks'].to_ndarray().astype(bool)
        assert len(boxes) == len(labels) == len(masks) >= 2
        for box, label, mask in zip(boxes, labels, masks):
            # mmdet's label 0..9 is the label-map value minus one, over exactly the mask.
            assert (label_map[mask] == label + 1).all()
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_coco_metric_scores_ground_truth_as_perfect(scenes_root):
    from mmdet.evaluation import CocoMetric
    dataset = _det_dataset(scenes_root)
    metric = CocoMetric(ann_file=scenes_root + 'annotations/val.json', metric='bbox')
    metric.dataset_meta = dataset.metainfo
    samples = []
    for i in range(len(dataset)):
        item = dataset[i]
        boxes = torch.as_tensor(item['gt_bboxes'].tensor)
        samples.append(dict(img_id=item['img_id'], ori_shape=item['ori_shape'],
                            pred_instances=dict(bboxes=boxes, scores=torch.ones(len(boxes)),
                                                labels=torch.as_tensor(
                                                    item['gt_bboxes_labels']))))
    metric.process({}, samples)
    result = metric.evaluate(len(samples))
    assert result['coco/bbox_mAP'] == pytest.approx(1.0)
    # A label shifted by one class is wrong everywhere: the categories are really checked.
    metric.results.clear()
    for s in samples:
        s['pred_instances']['labels'] = (s['pred_instances']['labels'] + 1) % 10
    metric.process({}, samples)
    assert metric.evaluate(len(samples))['coco/bbox_mAP'] < 0.5


# -- segmentation ------------------------------------------------------------------------------

def _seg_dataset(root, split='val', **kwargs):
    from mmengine.registry import init_default_scope

    from mmdiffkd.registry import DATASETS
    init_default_scope('mmseg')
    return DATASETS.build(dict(
        type='mmdiffkd.ScenesSegDataset', data_root=root,
        data_prefix=dict(img_path=f'{split}/images', seg_map_path=f'{split}/labels'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')], **kwargs))


def test_seg_dataset_reads_label_maps(scenes_root):
    dataset = _seg_dataset(scenes_root)
    assert dataset.metainfo['classes'] == SEG_CLASSES and len(SEG_CLASSES) == 11
    assert len(dataset.metainfo['palette']) == 11
    assert len(dataset) == 2
    for i in range(2):
        sample = dataset[i]['data_samples']
        gt = sample.gt_sem_seg.data.squeeze(0).numpy()
        on_disk = np.array(Image.open(sample.seg_map_path))
        assert (gt == on_disk).all() and gt.max() <= 10 and (gt > 0).any()
        assert not sample.reduce_zero_label


def test_seg_dataset_refuses_reduce_zero_label(scenes_root):
    with pytest.raises(ValueError, match='reduce_zero_label=True'):
        _seg_dataset(scenes_root, reduce_zero_label=True)


def test_iou_metric_scores_ground_truth_as_perfect(scenes_root):
    from mmseg.evaluation import IoUMetric
    dataset = _seg_dataset(scenes_root)
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    samples = []
    for i in range(len(dataset)):
        gt = dataset[i]['data_samples'].gt_sem_seg.data
        samples.append(dict(pred_sem_seg=dict(data=gt.clone()), gt_sem_seg=dict(data=gt)))
    metric.process({}, samples)
    assert metric.evaluate(len(samples))['mIoU'] == pytest.approx(100.0)


@pytest.mark.parametrize('name', SEG_CONFIGS)
def test_segmentation_config_trains_one_iteration_and_validates(name, scenes_root, tmp_path):
    cfg = shrink_scenes_config(Config.fromfile(osp.join(CONFIGS, name)), scenes_root, tmp_path)
    assert cfg.model.decode_head.num_classes == 11 and cfg.model.auxiliary_head is None
    assert cfg.model.pretrained is None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=1)
    runner = Runner.from_cfg(cfg)
    runner.train()  # one iteration (batch 2), then the val loop with IoUMetric
    assert runner.iter == 1 and np.isfinite(_loss(runner))
    assert 0.0 <= _val_metric(runner, 'mIoU') <= 100.0
