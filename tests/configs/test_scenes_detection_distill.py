"""DiffKD on FPN features with MMDetection, end to end on a tiny texture-scenes set.

The DiffKD RetinaNet and Faster R-CNN scenes configs (configs/scenes/) train a few iterations
through MMEngine's Runner with a random-init teacher saved to disk (a stand-in for a trained
one), validate with mmdet's CocoMetric, and their student is exported with
tools/export_student.py, re-loaded with ``mmdet.apis.init_detector`` from the student's plain
config and run with ``inference_detector`` on a scene image. The DiffKD + PKD config trains with
both losses (and with ``share=True``). FCOS and GFL take the same distillation block by config
alone (tiny models built from mmdet's own configs, one train step).
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import REPO, load_tool, shrink_scenes_config
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from tiny_models import (det_dataset, teacher_checkpoint, tiny_mmdet_model,
                         unscoped)

from mmdiffkd.datasets.scenes import (FASHION_MNIST_CLASSES, SceneSettings,
                                      generate_scenes)

pytest.importorskip('mmcv.ops', reason='mmdet needs mmcv with ops')

torch.set_num_threads(1)

SCENES = osp.join(REPO, 'configs', 'scenes')
RETINA = 'diffkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py'
RETINA_STUDENT = 'retinanet_r18_fpn_1xb8-6e_scenes.py'
FRCNN = 'diffkd_fpn_faster-rcnn_r50_faster-rcnn_r18_1xb8-6e_scenes.py'
FRCNN_STUDENT = 'faster-rcnn_r18_fpn_1xb8-6e_scenes.py'
FRCNN_TEACHER = 'faster-rcnn_r50_fpn_1xb8-6e_scenes.py'
COMBINED = 'diffkd-pkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py'
SIZE = 64  # images are generated and trained at 64 px here (the configs use 128)
LEVELS = range(5)


@pytest.fixture(scope='module')
def scenes_root(tmp_path_factory):
    out = tmp_path_factory.mktemp('scenes_det') / 'scenes'
    generate_scenes(str(out), SceneSettings(num_train=4, num_val=2, size=SIZE, seed=0,
                                            min_scale=16, max_scale=32))
    return str(out) + '/'


@pytest.fixture(scope='module')
def teacher_files(tmp_path_factory):
    """Random-init teachers saved once per module (stand-ins for trained ones), by config."""
    folder, made = tmp_path_factory.mktemp('teachers'), {}

    def get(cfg):
        key = cfg.model.teacher.config
        if key not in made:
            made[key] = teacher_checkpoint(cfg, str(folder / f'teacher_{len(made)}.pth'))
        return made[key]
    return get


def _resize_to(pipeline, size):
    for t in pipeline:
        if t['type'] == 'Resize':
            t['scale'] = (size, size)


def _shrink(cfg, root, work_dir, iters=2):
    """The config on the tiny set (``helpers.shrink_scenes_config``) at 64 px: ``iters``
    iterations, then one validation; a checkpoint at the end; the dry forward at 64 px."""
    shrink_scenes_config(cfg, root, work_dir)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        _resize_to(cfg[name].dataset.pipeline, SIZE)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=iters, by_epoch=False)
    cfg.log_processor = dict(by_epoch=False)
    cfg.randomness = dict(seed=0)
    cfg.model.dry_run = dict(input_size=(SIZE, SIZE))
    return cfg


def _keep_every_box(student_cfg):
    """An untrained detector scores below mmdet's 0.05: keep every box for the metric."""
    test_cfg = student_cfg.test_cfg
    (test_cfg.rcnn if 'rcnn' in test_cfg else test_cfg).score_thr = 0.0


def _scalar(runner, key):
    return runner.message_hub.get_scalar(key).current()


def _distill(name, root, tmp_path, teacher_files, iters=2):
    """Run ``name`` (a scenes distillation config) on the tiny set; return runner and config."""
    cfg = Config.fromfile(osp.join(SCENES, name))
    cfg.model.teacher.checkpoint = teacher_files(cfg)
    cfg = _shrink(cfg, root, tmp_path / 'work', iters)
    _keep_every_box(cfg.model.student)
    runner = Runner.from_cfg(cfg)
    teacher_before = {k: v.clone() for k, v in runner.model.teacher.state_dict().items()}
    runner.train()
    for k, v in runner.model.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), f'teacher changed: {k}'
    return runner, cfg


def _check_train_and_val(runner, iters, task_losses):
    assert runner.iter == iters
    for key in task_losses:
        assert np.isfinite(_scalar(runner, f'train/{key}')), key
    for level in LEVELS:  # one DiffKD module per FPN level, each with its two parts
        for part in ('distill', 'diffusion'):
            value = _scalar(runner, f'train/loss_fpn_{level}_{part}')
            assert np.isfinite(value) and value > 0, (level, part, value)
    # the val loop ran mmdet's CocoMetric on the 2 val scenes
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s'):
        value = _scalar(runner, f'val/coco/{key}')
        assert -1.0 <= value <= 1.0, (key, value)  # COCO writes -1 for an empty size range
    assert 0.0 <= _scalar(runner, 'val/coco/bbox_mAP_50') <= 1.0


def _export_and_reload(runner, student_name, tmp_path, capsys, draw=True):
    """export_student.py on the last checkpoint, then the mmdet APIs on a scene image."""
    ckpt = osp.join(runner.work_dir, f'iter_{runner.iter}.pth')
    saved = torch.load(ckpt, weights_only=True)
    keys = saved['state_dict']
    assert not any(k.startswith('teacher.') for k in keys)
    assert any(k.startswith('distill_losses.fpn.4.') for k in keys)  # DiffKD modules resume
    student_config = osp.join(SCENES, student_name)  # the plain config, as a user would
    capsys.readouterr()
    final = load_tool('export_student').main(
        [ckpt, str(tmp_path / 'release' / 'student.pth'), '--config', student_config])
    assert capsys.readouterr().out.strip() == final and osp.isfile(final)
    exported = torch.load(final, weights_only=True)
    assert not any(k.startswith(('student.', 'distill_losses.', 'teacher.'))
                   for k in exported['state_dict'])

    from mmdet.apis import inference_detector, init_detector
    model = init_detector(student_config, final, device='cpu')
    assert model.dataset_meta['classes'] == FASHION_MNIST_CLASSES
    student = runner.model.student.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, student[k]), k
    image = osp.join(runner.cfg.data_root, 'val', 'images', '000000.png')
    for module in model.modules():  # keep every box of the untrained student (the heads' cfg)
        test_cfg = getattr(module, 'test_cfg', None)
        if isinstance(test_cfg, dict) and 'score_thr' in test_cfg:
            test_cfg['score_thr'] = 0.0
    result = inference_detector(model, image)
    boxes = result.pred_instances.bboxes
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0
    assert ((result.pred_instances.labels >= 0) & (result.pred_instances.labels < 10)).all()
    h, w = result.ori_shape
    assert (h, w) == (SIZE, SIZE)
    assert (boxes[:, 2:] <= torch.tensor([w, h]) + 1e-3).all()  # in original-image pixels

    if draw:
        _draw(student_config, final, image, boxes, tmp_path)
    return model


def _draw(student_config, final, image, boxes, tmp_path):
    """tools/draw_prediction.py draws ``boxes`` (the prediction of ``inference_detector``)."""
    # the picture, with mmdet's own visualizer (the config keeps every box, as above)
    keep_all = Config.fromfile(student_config)
    _keep_every_box(keep_all.model)
    keep_all.dump(str(tmp_path / 'student_keep_all.py'))
    out = tmp_path / 'prediction.png'
    _, drawn_result, summary = load_tool('draw_prediction').draw_prediction(
        str(tmp_path / 'student_keep_all.py'), final, image, str(out), score_thr=0.0)
    assert summary['task'] == 'mmdet' and summary['boxes'] == len(boxes) > 0
    assert torch.equal(drawn_result.pred_instances.bboxes, boxes)
    from PIL import Image
    picture = np.asarray(Image.open(out).convert('RGB')).astype(int)
    original = np.asarray(Image.open(image).convert('RGB')).astype(int)
    assert picture.shape == original.shape == (SIZE, SIZE, 3)
    assert (np.abs(picture - original).sum(-1) > 30).mean() > 0.05  # boxes drawn over it


def test_retinanet_diffkd_scenes_trains_evaluates_exports_and_reloads(scenes_root, tmp_path,
                                                                      teacher_files, capsys):
    runner, cfg = _distill(RETINA, scenes_root, tmp_path, teacher_files)
    assert cfg.model.distill_losses.fpn.share is False
    assert len(runner.model.distill_losses.fpn) == 5  # one DiffKD per level
    _check_train_and_val(runner, 2, ('loss_cls', 'loss_bbox'))
    _export_and_reload(runner, RETINA_STUDENT, tmp_path, capsys)


def test_faster_rcnn_diffkd_scenes_trains_evaluates_exports_and_reloads(scenes_root, tmp_path,
                                                                        teacher_files, capsys):
    runner, cfg = _distill(FRCNN, scenes_root, tmp_path, teacher_files)
    # the teacher stopped after its neck: the RPN / RoI head of the teacher never ran
    assert runner.model.teacher_mode == 'tensor'
    _check_train_and_val(runner, 2, ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'))
    # the picture is drawn in the RetinaNet test (and for any model in test_draw_prediction.py)
    _export_and_reload(runner, FRCNN_STUDENT, tmp_path, capsys, draw=False)


def test_faster_rcnn_scenes_configs_match():
    """The student-alone and DiffKD configs share the data, schedule and student model; the
    teacher is the R-50 config; FPN / RPN / RoI widths are the CPU-sized 128."""
    distill = Config.fromfile(osp.join(SCENES, FRCNN))
    student = Config.fromfile(osp.join(SCENES, FRCNN_STUDENT))
    teacher = Config.fromfile(osp.join(SCENES, FRCNN_TEACHER))
    assert distill.model.student == student.model
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator', 'optim_wrapper',
                'param_scheduler', 'train_cfg'):
        assert distill[key] == student[key] == teacher[key], key
    assert osp.samefile(distill.model.teacher.config, osp.join(SCENES, FRCNN_TEACHER))
    assert (teacher.model.backbone.depth, student.model.backbone.depth) == (50, 18)
    for cfg in (teacher, student):
        m = cfg.model
        assert m.backbone.init_cfg is None  # nothing is downloaded
        assert m.neck.out_channels == m.rpn_head.in_channels == 128
        assert m.roi_head.bbox_roi_extractor.out_channels == 128
        assert m.roi_head.bbox_head.num_classes == 10
    assert cfg.train_cfg.max_epochs == 6


def test_diffkd_plus_pkd_config_trains_with_both_losses(scenes_root, tmp_path, teacher_files):
    cfg = Config.fromfile(osp.join(SCENES, COMBINED))
    base = Config.fromfile(osp.join(SCENES, RETINA))
    assert cfg.model.distill_losses.fpn == base.model.distill_losses.fpn
    assert cfg.model.distill_losses.fpn_pkd.loss.type == 'PKD'
    cfg.model.teacher.checkpoint = teacher_files(cfg)
    cfg = _shrink(cfg, scenes_root, tmp_path / 'work', iters=1)
    cfg.model.distill_losses.fpn.share = True  # the documented option: one module, 5 levels
    cfg.model.distill_losses.fpn.loss.distill_warmup_iters = 0  # one iteration: no warm-up
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = None
    runner = Runner.from_cfg(cfg)
    from mmdiffkd.models.diffkd import DiffKD
    assert isinstance(runner.model.distill_losses.fpn, DiffKD)  # shared by the five levels
    before = {k: v.clone() for k, v in runner.model.distill_losses.fpn.state_dict().items()}
    runner.train()
    for level in LEVELS:
        for key in (f'loss_fpn_{level}_distill', f'loss_fpn_{level}_diffusion',
                    f'loss_fpn_pkd_{level}'):
            value = _scalar(runner, f'train/{key}')
            assert np.isfinite(value) and value > 0, (key, value)
        # PKD = mean over channels of 1 - Pearson r, weighted 10: within [0, 20]
        assert _scalar(runner, f'train/loss_fpn_pkd_{level}') <= 20.0 + 1e-4
    after = runner.model.distill_losses.fpn.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())  # the shared one learnt


# ---- FCOS and GFL: the same block, by config alone ------------------------------------------

# Both heads use GroupNorm(32): on 32 channels and the 1x1 top level of a 64 px image that is one
# value per group, which GroupNorm refuses; 8 groups keep 4 channels per group.
GN8 = dict(norm_cfg=dict(type='GN', num_groups=8, requires_grad=True))
ONE_STAGE = {
    'fcos': ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', GN8),
    'gfl': ('gfl/gfl_r50_fpn_1x_coco.py', GN8),
}


@pytest.mark.parametrize('name', sorted(ONE_STAGE))
def test_diffkd_fpn_block_works_for_fcos_and_gfl(name):
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from mmdiffkd.registry import MODELS
    path, overrides = ONE_STAGE[name]
    init_default_scope('mmdet')
    # the distillation block of the scenes RetinaNet config, unchanged
    block = Config.fromfile(osp.join(SCENES, RETINA)).model.distill_losses
    model = MODELS.build(dict(
        type='mmdiffkd.Distiller',
        student=tiny_mmdet_model(path, 1, overrides),
        teacher=dict(config=tiny_mmdet_model(path, 2, overrides), checkpoint=None,
                     allow_untrained=True),
        distill_losses=block, dry_run=dict(input_size=(64, 64))))
    assert type(model.student).__name__ == {'fcos': 'FCOS', 'gfl': 'GFL'}[name]
    for level in LEVELS:  # channels inferred from the dry forward: 32 (student) -> 64 (teacher)
        loss = model.distill_losses.fpn[str(level)]
        assert (loss.student_channels, loss.teacher_channels) == (32, 64)
    model.train()
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    batch = pseudo_collate([det_dataset(n=2, size=64)[i] for i in range(2)])
    MessageHub.get_current_instance().update_info('iter', 0)  # as the Runner does (warm-up)
    losses = model.train_step(batch, optim)
    for level in LEVELS:
        assert torch.isfinite(losses[f'loss_fpn_{level}_distill'])
    assert 'loss_cls' in losses and 'loss_bbox' in losses
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, params[k])}
    assert any(k.startswith('student.neck.') for k in changed)
    assert any(k.startswith('distill_losses.fpn.0.') for k in changed)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher[k]), k


# ---- COCO paper-protocol configs (configs/coco/): build and one step, nothing downloaded ------

COCO = {
    'diffkd_fpn_retinanet_r101_retinanet_r50_1x_coco.py':
        ('retinanet', 'retinanet_r50_fpn_1x_coco', 'retinanet_r101_fpn_1x_coco', 'RetinaNet'),
    'diffkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py':
        ('faster_rcnn', 'faster-rcnn_r50_fpn_1x_coco', 'faster-rcnn_r101_fpn_1x_coco',
         'FasterRCNN'),
}


def _metafile_weights(folder, name):
    """The model-zoo URL of ``name`` in the installed mmdet's metafile."""
    import yaml

    from mmdiffkd.utils.builder import resolve_config_path
    with open(resolve_config_path(f'mmdet::{folder}/metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    (entry, ) = [m for m in models if m['Name'] == name]
    return entry['Weights']


@pytest.mark.parametrize('name', sorted(COCO))
def test_coco_config_matches_mmdet_and_its_model_zoo(name):
    folder, student, teacher, _ = COCO[name]
    from mmdiffkd.utils.builder import resolve_config_path
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'coco', name))
    plain = Config.fromfile(resolve_config_path(f'mmdet::{folder}/{student}.py'))
    # the student experiment is mmdet's own, unchanged: model, data, schedule, optimizer
    assert unscoped(cfg.model.student) == unscoped(plain.model)
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator', 'optim_wrapper',
                'param_scheduler', 'train_cfg', 'auto_scale_lr'):
        assert unscoped(cfg[key]) == unscoped(plain[key]), key
    assert cfg.train_cfg.max_epochs == 12  # 1x
    assert cfg.model.teacher.config == f'mmdet::{folder}/{teacher}.py'
    assert cfg.model.teacher.checkpoint == _metafile_weights(folder, teacher)
    assert cfg.model.teacher.checkpoint.startswith('https://download.openmmlab.com/')
    fpn = cfg.model.distill_losses.fpn
    assert fpn.loss.type == 'DiffKD' and list(fpn.index) == [0, 1, 2, 3, 4]


def _build_coco(name):
    """The distiller of a COCO config with a random teacher (its URL replaced), built with the
    dry forward at 64 px; checks the models and the inferred FPN widths."""
    from mmengine.registry import init_default_scope

    from mmdiffkd.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'coco', name))
    init_default_scope(cfg.default_scope)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher = dict(config=cfg.model.teacher.config, checkpoint=None,
                             allow_untrained=True)
    model_cfg.dry_run = dict(input_size=(64, 64))
    model = MODELS.build(model_cfg)
    assert type(model.student).__name__ == COCO[name][3]
    assert model.student.backbone.depth == 50 and model.teacher.backbone.depth == 101
    for level in LEVELS:
        loss = model.distill_losses.fpn[str(level)]
        assert (loss.student_channels, loss.teacher_channels) == (256, 256)
    return cfg, model


def test_coco_faster_rcnn_config_builds():
    _, model = _build_coco('diffkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py')
    assert model.teacher_mode == 'tensor'  # the teacher is cut after its neck


# The Faster R-CNN step takes ~20 s on the shared 2-core CPU (2000 proposals, 512 RoIs, 1024-wide
# fc head at full size): `-m slow`; the default suite builds it (test above).
@pytest.mark.parametrize('name', [
    'diffkd_fpn_retinanet_r101_retinanet_r50_1x_coco.py',
    pytest.param('diffkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py',
                 marks=pytest.mark.slow)])
def test_coco_config_trains_one_step_on_fake_images(name):
    """The whole R-101 teacher and R-50 student (256-wide FPN, five DiffKD modules), random
    weights: the teacher's URL is replaced by allow_untrained, the student's ImageNet init is
    not run (init_weights is not called), so nothing is downloaded."""
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    cfg, model = _build_coco(name)
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    batch = pseudo_collate([det_dataset(n=2, size=64)[i] for i in range(2)])
    losses = model.train_step(batch, optim)
    for level in LEVELS:
        for part in ('distill', 'diffusion'):
            assert torch.isfinite(losses[f'loss_fpn_{level}_{part}'])
    assert torch.isfinite(losses['loss_cls']) and torch.isfinite(losses['loss_bbox'])
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, params[k])}
    assert any(k.startswith('student.neck.') for k in changed)
    assert any(k.startswith('distill_losses.fpn.4.') for k in changed)


# ---- baselines on the FPN levels (issue 8): PKD, FitNets, CWD, VkD ----------------------------

BASELINES = ['pkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py',
             'fitnets_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py',
             'cwd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py',
             'vkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py']


@pytest.mark.parametrize('name', BASELINES)
def test_fpn_baseline_config_trains_one_iteration(name, scenes_root, tmp_path, teacher_files):
    cfg = Config.fromfile(osp.join(SCENES, name))
    fpn = cfg.model.distill_losses.fpn
    assert list(cfg.model.distill_losses) == ['fpn'] and fpn.index == [0, 1, 2, 3, 4]
    cfg.model.teacher.checkpoint = teacher_files(cfg)
    cfg = _shrink(cfg, scenes_root, tmp_path / 'work', iters=1)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = None
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.student.state_dict().items()}
    runner.train()
    assert runner.iter == 1
    for level in LEVELS:  # one loss per level, weighted as the config says, finite
        value = _scalar(runner, f'train/loss_fpn_{level}')
        assert np.isfinite(value) and value >= 0, (level, value)
    after = runner.model.student.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items()
               if v.is_floating_point() and k.startswith('neck.'))
