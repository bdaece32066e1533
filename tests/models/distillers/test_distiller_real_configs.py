"""The distiller on OpenMMLab configs the project does not ship, as a new user writes them.

- mmseg: a student whose own ``data_preprocessor`` (crop size, mean / std) differs from the
  experiment's top-level one keeps its own, through MMEngine's Runner.
- mmpretrain transformers with per-side records and transforms: VkD in the DeiT form (the
  student's patch tokens mean-pooled against the teacher's pooled feature, plus KD on the
  distillation head), DiffKD on ViT patch tokens, a Swin token record against a CNN map.
- Every shape problem the dry forward can see fails at build, naming the record and the fix.

Teachers have random weights (saved to a temporary checkpoint where small, ``allow_untrained``
for the large ones): nothing is downloaded. Inputs are 64 px.
"""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from tiny_models import (cls_dataset, det_dataset, seg_dataset, teacher_checkpoint,
                         tiny_mmdet_model)

import mmdiffkd.models  # noqa: F401
from mmdiffkd.registry import MODELS
from mmdiffkd.utils.builder import resolve_config_path

pytest.importorskip('mmcv.ops', reason='mmdet / mmseg / mmpretrain need mmcv with ops')

DEIT_TI = 'mmpretrain::deit/deit-tiny-distilled_4xb256_in1k.py'
DEIT_TI_PLAIN = 'mmpretrain::deit/deit-tiny_4xb256_in1k.py'
DEIT_S = 'mmpretrain::deit/deit-small_4xb256_in1k.py'
SWIN_T = 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'
RESNET18 = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
SEGFORMER = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'


def _cfg(path):
    return Config.fromfile(resolve_config_path(path))


def _small(path, size=64):
    """A model dict of ``path`` for ``size`` px inputs (ViT position embeddings are resized;
    Swin's windows are padded on its 2x2 last stage), with the experiment's preprocessor."""
    cfg = _cfg(path)
    model = copy.deepcopy(cfg.model)
    if 'img_size' in model.backbone:
        model.backbone.img_size = size
    if model.backbone.type == 'SwinTransformer':
        model.backbone.pad_small_map = True
    model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return model


def _teacher(path_or_model, tmp_path):
    """``dict(config=..., checkpoint=<random weights saved to tmp_path>)``."""
    spec = dict(config=path_or_model)
    ckpt = teacher_checkpoint(Config(dict(model=dict(teacher=spec))),
                              str(tmp_path / 'teacher.pth'))
    return dict(spec, checkpoint=ckpt)


def _distiller(student, teacher, losses, size=64):
    return MODELS.build(dict(type='mmdiffkd.Distiller', student=student, teacher=teacher,
                             distill_losses=losses, dry_run=dict(input_size=(size, size))))


def _train_step(model, batch, optim=None):
    model.train()
    optim = optim or build_optim_wrapper(
        model, dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05)))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    log = model.train_step(batch, optim)
    assert all(torch.isfinite(v) for v in log.values()), log
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    return log, changed


def _cls_batch(size=64):
    data = cls_dataset(n=2, size=size)
    return pseudo_collate([data[0], data[1]])


# ---- mmseg: the student's own data preprocessor ------------------------------------------------

def test_mmseg_student_keeps_its_own_data_preprocessor(tmp_path):
    """SegFormer's experiment sets a top-level SegDataPreProcessor (size 512), which MMEngine's
    Runner hands to the model as a default; the student sets its own (64 px, other mean/std)
    and must keep it, and it is the one that runs."""
    from mmengine.runner import Runner
    cfg = _cfg(SEGFORMER)
    assert tuple(cfg.data_preprocessor.size) == (512, 512)
    student = copy.deepcopy(cfg.model)
    student.backbone.init_cfg = None  # no pretrained download
    student.data_preprocessor = dict(cfg.data_preprocessor, size=(64, 64),
                                     mean=[100.0, 110.0, 120.0], std=[50.0, 51.0, 52.0])
    model = dict(type='mmdiffkd.Distiller', student=student,
                 teacher=_teacher(SEGFORMER, tmp_path),
                 distill_losses=dict(logits=dict(loss=dict(type='KD', tau=1.0),
                                                 student='decode_head.conv_seg')),
                 dry_run=dict(input_size=(64, 64)))
    runner = Runner(model=model, work_dir=str(tmp_path / 'work'), experiment_name='seg_dp',
                    data_preprocessor=cfg.data_preprocessor, default_scope='mmseg')
    distiller = runner.model
    own = distiller.student.data_preprocessor
    assert distiller.data_preprocessor is own  # the one MMEngine runs on every batch
    assert tuple(own.size) == (64, 64)
    assert own.mean.flatten().tolist() == [100.0, 110.0, 120.0]
    assert own.std.flatten().tolist() == [50.0, 51.0, 52.0]
    # the teacher's config file gives it its experiment's own (512, ImageNet mean / std) ...
    assert tuple(distiller.teacher.data_preprocessor.size) == (512, 512)
    data = seg_dataset(n=2, size=48)
    batch = pseudo_collate([data[0], data[1]])
    out = distiller.data_preprocessor(batch, True)
    assert out['inputs'].shape[-2:] == (64, 64)  # padded to the student's size, not to 512
    # ... and gets the batch renormalised to it
    raw = torch.stack([s.float() for s in batch['inputs']])[:, [2, 1, 0]]  # bgr_to_rgb
    theirs = (raw - torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)) / torch.tensor(
        [58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    mine = distiller.teacher_inputs(out['inputs'])[..., :48, :48]
    torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)
    log, changed = _train_step(distiller, batch)
    assert 'loss_logits' in log and any(k.startswith('student.') for k in changed)


# ---- mmpretrain transformers: per-side records and transforms ---------------------------------

def test_vkd_deit_form_pools_student_patch_tokens_and_distils_the_distillation_head(tmp_path):
    init_default_scope('mmpretrain')
    model = _distiller(
        _small(DEIT_TI), _teacher(_small(DEIT_S), tmp_path),
        dict(feat=dict(loss=dict(type='VkD'),
                       student=dict(path='backbone.ln1',
                                    transform=[dict(type='drop_tokens', n=2), 'mean_tokens']),
                       teacher=dict(path='backbone', index=-1)),
             head_kl=dict(loss=dict(type='KD', tau=1.0), student='head.layers.head_dist',
                          teacher='head.layers.head')))
    vkd = model.distill_losses.feat
    assert (vkd.student_channels, vkd.teacher_channels) == (192, 384)
    batch = _cls_batch()
    taken = []
    handle = model.student.backbone.ln1.register_forward_hook(
        lambda m, i, o: taken.append(o.detach()))
    model.train()
    data = model.data_preprocessor(batch, True)
    _, pairs = model.distill_pairs(data['inputs'], data['data_samples'])
    handle.remove()
    feat, head = pairs
    # 2 images, 2 + 16 tokens of 192 (64 px, patch 16): class and distillation tokens dropped,
    # the 16 patch tokens averaged; the teacher's pooled feature is its class token
    assert taken[0].shape == (2, 18, 192)
    torch.testing.assert_close(feat.student, taken[0][:, 2:].mean(1))
    assert feat.teacher.shape == (2, 384) and head.student.shape == head.teacher.shape
    assert (feat.key, head.key) == ('feat', 'head_kl')
    log, changed = _train_step(model, batch)
    assert {'loss_student', 'loss_feat', 'loss_head_kl'} <= set(log)
    assert any(k.startswith('distill_losses.feat.') for k in changed)
    assert any(k.startswith('student.head.layers.head_dist') for k in changed)


def test_diffkd_on_vit_patch_tokens(tmp_path):
    """ViT at 64 px: 17 tokens (16 patches + class). The class token is dropped per side and
    the 16 patch tokens become a 4x4 map; without drop_tokens the build names the fix."""
    init_default_scope('mmpretrain')
    teacher = _teacher(_small(DEIT_S), tmp_path)
    side = dict(path='backbone.ln1', transform=[dict(type='drop_tokens', n=1), 'tokens_to_map'])
    model = _distiller(_small(DEIT_TI_PLAIN), teacher,
                       dict(tokens=dict(loss=dict(type='DiffKD'), student=side)))
    diffkd = model.distill_losses.tokens
    assert (diffkd.student_channels, diffkd.teacher_channels, diffkd.kernel_size) == \
        (192, 384, 3)
    batch = _cls_batch()
    data = model.data_preprocessor(batch, True)
    _, (pair, ) = model.distill_pairs(data['inputs'], data['data_samples'])
    assert pair.student.shape == (2, 192, 4, 4) and pair.teacher.shape == (2, 384, 4, 4)
    log, changed = _train_step(model, batch)
    assert {'loss_tokens_distill', 'loss_tokens_diffusion'} <= set(log)
    assert any(k.startswith('student.backbone.layers.11.') for k in changed)
    with pytest.raises(ValueError) as err:
        _distiller(_small(DEIT_TI_PLAIN), teacher,
                   dict(tokens=dict(loss=dict(type='DiffKD'), student='backbone.ln1')))
    msg = str(err.value)
    assert 'distill_losses.tokens' in msg and 'student record "backbone.ln1"' in msg
    assert '17 tokens are not a square grid' in msg and 'drop_tokens' in msg


def test_swin_tokens_against_a_cnn_map(tmp_path):
    """A Swin-T teacher's final norm gives (B, 4, 768) tokens at 64 px, a ResNet-18 student's
    layer4 a (B, 512, 2, 2) map. DiffKD takes the pair as it is (it lays tokens on the map's
    grid); a loss that does not is refused at build with the transform to add, and trains with
    it."""
    init_default_scope('mmpretrain')
    student, teacher = _small(RESNET18), _teacher(_small(SWIN_T), tmp_path)
    model = _distiller(student, teacher, dict(
        feat=dict(loss=dict(type='DiffKD'), student='backbone.layer4',
                  teacher='backbone.norm3')))
    log, _ = _train_step(model, _cls_batch())
    assert {'loss_feat_distill', 'loss_feat_diffusion'} <= set(log)
    with pytest.raises(ValueError) as err:
        _distiller(student, teacher, dict(
            feat=dict(loss=dict(type='FitNets'), student='backbone.layer4',
                      teacher='backbone.norm3')))
    msg = str(err.value)
    assert 'teacher record "backbone.norm3"' in msg and '(1, 4, 768)' in msg
    assert "teacher side transform='tokens_to_map'" in msg and 'resize' not in msg
    model = _distiller(student, teacher, dict(
        feat=dict(loss=dict(type='FitNets'), student='backbone.layer4',
                  teacher=dict(path='backbone.norm3', transform='tokens_to_map'))))
    log, changed = _train_step(model, _cls_batch())
    assert 'loss_feat' in log and any(k.startswith('distill_losses.feat.') for k in changed)


# ---- errors that used to come late or mislead ---------------------------------------------------

def test_tuple_output_without_index_fails_at_build():
    init_default_scope('mmdet')
    path = 'retinanet/retinanet_r18_fpn_1x_coco.py'
    with pytest.raises(TypeError) as err:
        _distiller(tiny_mmdet_model(path, 1),
                   dict(config=tiny_mmdet_model(path, 2), checkpoint=None, allow_untrained=True),
                   dict(fpn=dict(loss=dict(type='FitNets'), student='neck')))
    msg = str(err.value)
    assert 'distill_losses.fpn' in msg and 'student record "neck"' in msg
    assert 'tuple of 5' in msg and 'index=[0, ..., 4]' in msg


def test_index_on_a_plain_tensor_fails_at_build():
    init_default_scope('mmpretrain')
    student = _small(RESNET18)
    with pytest.raises(IndexError) as err:
        _distiller(student, dict(config=student, checkpoint=None, allow_untrained=True),
                   dict(f=dict(loss=dict(type='MSE'), student='backbone.layer4', index=0)))
    msg = str(err.value)
    assert '"backbone.layer4"' in msg and 'tensor of shape (1, 512, 2, 2)' in msg
    assert 'slice the batch axis' in msg and 'Remove index' in msg


def test_roi_level_records_fail_at_build():
    """Faster R-CNN's RoI features have one row per proposal, not per image: refused at build
    (student and teacher would give different numbers of rows in training)."""
    init_default_scope('mmdet')
    model = copy.deepcopy(_cfg('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model)
    model.backbone.init_cfg = None
    with pytest.raises(ValueError) as err:
        _distiller(model, dict(config=model, checkpoint=None, allow_untrained=True),
                   dict(roi=dict(loss=dict(type='MSE'),
                                 student='roi_head.bbox_roi_extractor')))
    msg = str(err.value)
    assert 'distill_losses.roi' in msg and 'record "roi_head.bbox_roi_extractor"' in msg
    assert 'not one row per image' in msg and 'RoI-level' in msg


def test_the_same_neck_with_index_trains():
    """Sanity: the same RetinaNet with index= trains, so the errors above are about the
    declarations only."""
    init_default_scope('mmdet')
    path = 'retinanet/retinanet_r18_fpn_1x_coco.py'
    model = _distiller(tiny_mmdet_model(path, 1),
                       dict(config=tiny_mmdet_model(path, 2), checkpoint=None,
                            allow_untrained=True),
                       dict(fpn=dict(loss=dict(type='FitNets'), student='neck', index=[0, 4])))
    data = det_dataset(n=2, size=64)
    log, _ = _train_step(model, pseudo_collate([data[0], data[1]]))
    assert {'loss_fpn_0', 'loss_fpn_4'} <= set(log)
