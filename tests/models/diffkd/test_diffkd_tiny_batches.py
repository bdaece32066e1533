"""DiffKD where its BatchNorms see two values per channel: batch-2 logits and 1x1 feature maps.

A batch-statistics BatchNorm of two values outputs +-1 whatever the input and passes back a
gradient that grows like 1 / |x1 - x2|; the first smoke run a user tries (two small images)
diverged within a few steps. DiffKD's BatchNorm2d falls back to its running statistics below
four values per channel (``mmdiffkd.models.diffkd.layers.MIN_BATCH_VALUES``). These tests train
20 SGD steps (momentum 0.9, the configs' own optimizers) on real OpenMMLab configs the project
does not ship and require every loss and parameter to stay finite.
"""
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from tiny_models import cls_dataset, det_dataset, tiny_mmdet_model

import mmdiffkd.models  # noqa: F401
from mmdiffkd.models.diffkd import layers
from mmdiffkd.registry import MODELS
from mmdiffkd.utils.builder import resolve_config_path

pytest.importorskip('mmcv.ops', reason='mmdet / mmpretrain need mmcv with ops')

STEPS = 20


def _train(model, optim_cfg, batches):
    """``STEPS`` train steps (after ``init_weights``, as the Runner does); returns the step at
    which a loss or a parameter became non-finite, or None."""
    model.init_weights()
    model.train()
    optim = build_optim_wrapper(model, optim_cfg)
    for step in range(STEPS):
        log = model.train_step(batches[step % len(batches)], optim)
        values = [v for k, v in log.items() if 'loss' in k]
        if not all(torch.isfinite(v) for v in values) or not all(
                torch.isfinite(p).all() for p in model.parameters()):
            return step
    return None


def _resnet_distiller():
    """mmpretrain's ResNet-18 ImageNet experiment at 32 px (layer4 is 1x1, logits 100 classes),
    DiffKD on layer4 and on the logits, a random teacher of the same config."""
    cfg = Config.fromfile(resolve_config_path('mmpretrain::resnet/resnet18_8xb32_in1k.py'))
    init_default_scope('mmpretrain')
    student = cfg.model.copy()
    student.head.num_classes = 100
    model = MODELS.build(dict(
        type='mmdiffkd.Distiller', student=student,
        teacher=dict(config=dict(student, data_preprocessor=cfg.data_preprocessor),
                     checkpoint=None, allow_untrained=True),
        data_preprocessor=cfg.data_preprocessor,
        distill_losses=dict(
            feat=dict(loss=dict(type='DiffKD'), student='backbone.layer4'),
            logits=dict(loss=dict(type='DiffKD'), student='head.fc')),
        dry_run=dict(input_size=(32, 32))))
    data = cls_dataset(n=8, size=32, num_classes=100)
    batches = [pseudo_collate([data[2 * i], data[2 * i + 1]]) for i in range(4)]
    return cfg, model, batches


def test_logits_and_1x1_maps_at_batch_2_stay_finite():
    torch.manual_seed(0)
    cfg, model, batches = _resnet_distiller()
    assert model.distill_losses.logits.kernel_size == 1
    assert cfg.optim_wrapper.optimizer.momentum == 0.9  # SGD lr 0.1, mmpretrain's own
    assert _train(model, cfg.optim_wrapper, batches) is None


def test_batch_statistics_at_two_values_diverge(monkeypatch):
    """The same run with plain BatchNorm at two values per channel (the threshold at 2, the
    behaviour before the fallback): something becomes non-finite. Shows the test above can
    fail."""
    monkeypatch.setattr(layers, 'MIN_BATCH_VALUES', 2)
    torch.manual_seed(0)
    cfg, model, batches = _resnet_distiller()
    assert _train(model, cfg.optim_wrapper, batches) is not None


@pytest.mark.parametrize('share', [True, False])
def test_fpn_with_1x1_levels_at_batch_2_stays_finite(share):
    """mmdet's RetinaNet at 64 px: FPN levels 8x8, 4x4, 2x2, 1x1, 1x1; with share=True one
    DiffKD module serves the five levels, so a 1x1 level would poison all of them."""
    cfg = Config.fromfile(resolve_config_path('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='mmdiffkd.Distiller',
        student=tiny_mmdet_model('retinanet/retinanet_r18_fpn_1x_coco.py', 1),
        teacher=dict(config=tiny_mmdet_model('retinanet/retinanet_r18_fpn_1x_coco.py', 2),
                     checkpoint=None, allow_untrained=True),
        distill_losses=dict(fpn=dict(loss=dict(type='DiffKD'), student='neck',
                                     index=[0, 1, 2, 3, 4], share=share)),
        dry_run=dict(input_size=(64, 64))))
    data = det_dataset(n=4, size=64)
    batches = [pseudo_collate([data[0], data[1]]), pseudo_collate([data[2], data[3]])]
    with torch.no_grad():
        feats = model.student.extract_feat(model.data_preprocessor(batches[0], True)['inputs'])
    assert [tuple(f.shape[2:]) for f in feats] == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert cfg.optim_wrapper.optimizer.momentum == 0.9  # SGD lr 0.01, mmdet's own
    assert _train(model, cfg.optim_wrapper, batches) is None
