"""Segmentation distillation on the texture scenes and the Cityscapes paper-protocol configs.

Scenes (a tiny generated set, a random-weight stand-in for the trained teacher): MMEngine's
Runner trains the DiffKD DeepLabV3 and DiffKD PSPNet configs a few iterations, validates with
IoUMetric, the student is exported with tools/export_student.py and re-loaded with
``mmseg.apis.init_model`` for ``inference_model`` on a scene image; the CWD, DiffKD + CWD,
FitNets, VkD configs and the map-level logits option train one step.
Cityscapes: the protocol, teacher config and model-zoo URL of each config; (slow) each builds
(teacher random: nothing is downloaded) and trains one step on two fake 64x128 images.

Default suite: the two DiffKD runs (~35 s each on the shared 2-core machine under load, plus
~20 s to make the scenes and the teacher checkpoint) and config checks; ``-m slow`` adds the
one-step runs of the other scenes configs and of the Cityscapes configs (~15 s each).
"""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image
from helpers import REPO, load_tool, shrink_scenes_config
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from tiny_models import teacher_checkpoint

from mmdiffkd.datasets.scenes import SEG_CLASSES, SceneSettings, generate_scenes
from mmdiffkd.registry import DATASETS, MODELS

pytest.importorskip('mmseg', reason='needs mmsegmentation (and mmcv with ops)')

torch.set_num_threads(1)

SCENES = osp.join(REPO, 'configs', 'scenes')
CITYSCAPES = sorted(glob.glob(osp.join(REPO, 'configs', 'cityscapes', '*.py')))
PAIR = 'deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py'
DIFFKD = {
    'deeplabv3': (f'diffkd_feat-logits_{PAIR}', 'deeplabv3_r18-d16_1xb8-1k_scenes.py'),
    'pspnet': ('diffkd_feat-logits_deeplabv3_r50-d16_pspnet_r18-d16_1xb8-1k_scenes.py',
               'pspnet_r18-d16_1xb8-1k_scenes.py'),
}
DIFFKD_PARTS = ('loss_feat_distill', 'loss_feat_diffusion', 'loss_feat_ae',
                'loss_logits_distill', 'loss_logits_diffusion')
TEACHER_URL = ('https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
               'deeplabv3_r101-d8_512x1024_80k_cityscapes/'
               'deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth')


@pytest.fixture(scope='module')
def scenes_root(tmp_path_factory):
    out = tmp_path_factory.mktemp('scenes_seg') / 'scenes'
    generate_scenes(str(out), SceneSettings(num_train=4, num_val=2, size=160, seed=0))
    return str(out) + '/'


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    """The scenes teacher (DeepLabV3 R-50-d16) with seeded random weights, saved locally."""
    cfg = Config.fromfile(osp.join(SCENES, DIFFKD['deeplabv3'][0]))
    return teacher_checkpoint(cfg, str(tmp_path_factory.mktemp('seg_teacher') / 'teacher.pth'))


def _scenes_cfg(name, root, work_dir, teacher):
    cfg = shrink_scenes_config(Config.fromfile(osp.join(SCENES, name)), root, work_dir)
    assert cfg.model.type == 'mmdiffkd.Distiller'
    cfg.model.teacher.checkpoint = teacher
    cfg.model.dry_run = dict(input_size=(128, 128))  # the crop size: cheaper than 224
    return cfg


def _scalar(runner, key):
    return runner.message_hub.get_scalar(key).current()


# -- scenes: train, validate, export, re-load, infer -------------------------------------------

@pytest.mark.parametrize('arch', sorted(DIFFKD))
def test_diffkd_scenes_train_val_export_and_inference(arch, scenes_root, teacher_ckpt,
                                                      tmp_path):
    name, student_name = DIFFKD[arch]
    cfg = _scenes_cfg(name, scenes_root, tmp_path / 'work', teacher_ckpt)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    teacher_before = {k: v.clone() for k, v in runner.model.teacher.state_dict().items()}
    runner.train()  # 2 iterations (batch 2), then the val loop with IoUMetric
    assert runner.iter == 2
    for part in DIFFKD_PARTS:  # both DiffKD blocks ran and logged each of their parts
        assert np.isfinite(_scalar(runner, f'train/{part}')), part
    assert 0.0 <= _scalar(runner, 'val/mIoU') <= 100.0
    for k, v in runner.model.teacher.state_dict().items():  # frozen, BN statistics included
        assert torch.equal(v, teacher_before[k]), k

    ckpt = tmp_path / 'work' / 'iter_2.pth'
    saved = torch.load(ckpt, weights_only=True)
    assert not any(k.startswith('teacher.') for k in saved['state_dict'])
    assert any(k.startswith('distill_losses.feat.') for k in saved['state_dict'])
    student_config = osp.join(SCENES, student_name)
    final = load_tool('export_student').main(
        [str(ckpt), str(tmp_path / 'release' / f'{arch}_diffkd.pth'),
         '--config', student_config])
    assert osp.basename(final).startswith(f'{arch}_diffkd-')

    from mmseg.apis import inference_model, init_model
    model = init_model(student_config, final, device='cpu')
    assert tuple(model.dataset_meta['classes']) == SEG_CLASSES
    student = {k[len('student.'):]: v for k, v in saved['state_dict'].items()
               if k.startswith('student.')}
    for k, v in model.state_dict().items():  # exactly the trained student, nothing else
        assert torch.equal(v, student[k]), k
    assert set(model.state_dict()) == set(student)

    img_path = osp.join(scenes_root, 'val', 'images', '000000.png')
    height, width = np.array(Image.open(img_path)).shape[:2]
    result = inference_model(model, img_path)
    pred = result.pred_sem_seg.data
    assert tuple(pred.shape) == (1, height, width)
    assert int(pred.min()) >= 0 and int(pred.max()) <= len(SEG_CLASSES) - 1
    assert tuple(result.seg_logits.data.shape) == (len(SEG_CLASSES), height, width)

    if osp.isfile(osp.join(REPO, 'tools', 'draw_prediction.py')):  # the picture tool, if there
        out = str(tmp_path / 'pred.png')
        _, drawn, summary = load_tool('draw_prediction').draw_prediction(
            student_config, final, img_path, out)
        assert torch.equal(drawn.pred_sem_seg.data, pred)  # the same student, the same labels
        assert np.array(Image.open(out)).shape[:2] == (height, width)
        assert summary['task'] == 'mmseg' and set(summary['classes']) <= set(SEG_CLASSES)


# -- scenes: the other distillation configs, one step each -------------------------------------

def _scenes_batch(cfg, n=2):
    """``n`` training items through the config's own train pipeline (crops of 128 px)."""
    init_default_scope('mmseg')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return pseudo_collate([dataset[i] for i in range(n)])


def _train_one_step(cfg):
    init_default_scope(cfg.default_scope)
    model_cfg = cfg.model
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)  # as the Runner does
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    losses = model.train_step(_scenes_batch(cfg), optim)
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    for k, v in losses.items():
        assert torch.isfinite(v).all(), k
    return model, losses, changed


OTHERS = {
    # config: (loss parts that must be logged, parameter prefixes that must learn)
    f'cwd_logits_{PAIR}': (['loss_cwd'], []),
    f'diffkd-cwd_feat-logits_{PAIR}': (list(DIFFKD_PARTS) + ['loss_cwd'],
                                       ['distill_losses.feat.', 'distill_losses.logits.']),
    f'fitnets_feat_{PAIR}': (['loss_feat'], ['distill_losses.feat.regressor',
                                             'distill_losses.feat.norm']),
    f'vkd_feat_{PAIR}': (['loss_feat'], ['distill_losses.feat.projection']),
}


# ~11-15 s each on the loaded 2-core machine (R-50 teacher built, dry forward, one step): slow.
@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(OTHERS))
def test_scenes_distill_config_trains_one_step(name, scenes_root, teacher_ckpt, tmp_path):
    cfg = _scenes_cfg(name, scenes_root, tmp_path, teacher_ckpt)
    parts, learners = OTHERS[name]
    model, losses, changed = _train_one_step(cfg)
    assert 'decode.loss_ce' in losses  # the student's own loss is kept
    for part in parts:
        assert part in losses, (part, sorted(losses))
    assert any(k.startswith('student.backbone.layer4') for k in changed)
    assert any(k.startswith('student.decode_head.conv_seg') for k in changed)
    for prefix in learners:
        assert any(k.startswith(prefix) for k in changed), (prefix, sorted(changed))


def test_diffkd_cwd_config_is_diffkd_plus_cwd():
    diffkd = Config.fromfile(osp.join(SCENES, DIFFKD['deeplabv3'][0])).model.distill_losses
    cwd = Config.fromfile(osp.join(SCENES, f'cwd_logits_{PAIR}')).model.distill_losses
    both = Config.fromfile(osp.join(SCENES, f'diffkd-cwd_feat-logits_{PAIR}')).model
    assert both.distill_losses == dict(**diffkd, **cwd)


def test_pspnet_configs_share_the_deeplabv3_setup():
    """PSPNet student = the DeepLabV3 R-18 student with another head; same DiffKD blocks."""
    dlv3 = Config.fromfile(osp.join(SCENES, DIFFKD['deeplabv3'][0]))
    psp = Config.fromfile(osp.join(SCENES, DIFFKD['pspnet'][0]))
    assert psp.model.student.decode_head.type == 'PSPHead'
    assert psp.model.student.decode_head.num_classes == 11
    assert psp.model.student.backbone == dlv3.model.student.backbone
    for side in (psp.model.teacher, dlv3.model.teacher):  # the same file, however reached
        side.config = osp.normpath(side.config)
    assert psp.model.teacher == dlv3.model.teacher
    assert psp.model.distill_losses == dlv3.model.distill_losses
    assert psp.model.student.decode_head.loss_decode == dlv3.model.student.decode_head.loss_decode
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper', 'param_scheduler',
                'train_cfg', 'data_preprocessor'):
        assert psp[key] == dlv3[key], key


@pytest.mark.parametrize('name', sorted(
    osp.basename(p) for p in glob.glob(osp.join(SCENES, '*d16*_scenes.py'))))
def test_scenes_seg_configs_weight_items_and_never_pad(name):
    """Every scenes segmentor (teacher, students, distilled students): the item classes weigh
    10x the background in the cross-entropy, and training crops are never padded, because mmseg
    1.2.2's class-weighted cross-entropy crashes on the padding's ignore label 255."""
    cfg = Config.fromfile(osp.join(SCENES, name))
    models = [cfg.model.student, cfg.model.teacher] if 'student' in cfg.model else [cfg.model]
    for model in models:
        if 'config' in model:  # the teacher, by its own config file
            model = Config.fromfile(model.config).model
        assert model.decode_head.loss_decode.class_weight == [0.1] + [1.0] * 10, name
    resize = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomResize']
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop']
    assert len(resize) == 1 and len(crop) == 1
    assert min(resize[0].ratio_range) >= 1.0
    assert all(s >= c for s, c in zip(resize[0].scale, crop[0].crop_size))


@pytest.mark.slow
def test_map_level_logits_option_trains_one_step(scenes_root, teacher_ckpt, tmp_path):
    """The documented alternative: the whole logit map through a 3x3 denoiser (kernel 3)."""
    cfg = _scenes_cfg(DIFFKD['deeplabv3'][0], scenes_root, tmp_path, teacher_ckpt)
    cfg.model.distill_losses.feat = None
    cfg.model.distill_losses.pop('feat')
    cfg.model.distill_losses.logits.loss.kernel_size = 3
    model, losses, changed = _train_one_step(cfg)
    assert model.distill_losses.logits.kernel_size == 3
    assert {'loss_logits_distill', 'loss_logits_diffusion'} <= set(losses)
    assert any(k.startswith('distill_losses.logits.') for k in changed)


# -- Cityscapes paper-protocol configs ---------------------------------------------------------

def test_cityscapes_configs_found():
    names = sorted(osp.basename(p) for p in CITYSCAPES)
    assert [n.split('_r101-d8_')[1].split('_4xb2')[0] for n in names] == [
        'deeplabv3_r18-d8', 'mobilenet-v2-d8_deeplabv3', 'pspnet_r18-d8']


@pytest.mark.parametrize('path', CITYSCAPES, ids=osp.basename)
def test_cityscapes_config_protocol(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmseg'
    assert tuple(cfg.crop_size) == (512, 1024) and tuple(cfg.data_preprocessor.size) == (
        512, 1024)
    assert cfg.train_cfg.max_iters == 80000 and cfg.train_dataloader.batch_size == 2
    assert cfg.train_dataloader.dataset.type == 'CityscapesDataset'
    teacher = cfg.model.teacher
    assert teacher.config == 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'
    assert teacher.checkpoint == TEACHER_URL
    student = cfg.model.student
    assert student.decode_head.num_classes == 19
    assert student.pretrained in ('open-mmlab://resnet18_v1c', 'mmcls://mobilenet_v2')


def test_cityscapes_teacher_url_is_mmseg_model_zoo():
    """The URL is the one mmseg's own metafile lists for the teacher config."""
    import mmseg
    metafile = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', 'deeplabv3',
                        'metafile.yaml')
    text = open(metafile).read()
    assert f'Weights: {TEACHER_URL}' in text


def _cityscapes_model(path):
    """The config's distiller with a random teacher and student (nothing downloaded), its batch
    padded to 64x128 instead of 512x1024."""
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    model_cfg = cfg.model
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model_cfg.teacher = dict(config=model_cfg.teacher.config, checkpoint=None,
                             allow_untrained=True)
    model_cfg.student.pretrained = None
    model_cfg.student.backbone.init_cfg = None
    model_cfg.student.data_preprocessor.size = (64, 128)
    model_cfg.data_preprocessor = dict(size=(64, 128))
    model_cfg.dry_run = dict(input_size=(64, 128))
    return cfg, MODELS.build(model_cfg)


# ~14-16 s each on the loaded 2-core machine (R-101 teacher built and run): slow. The default
# suite checks the configs' protocol, teacher and URL without building (above).
@pytest.mark.slow
@pytest.mark.parametrize('path', CITYSCAPES, ids=osp.basename)
def test_cityscapes_config_trains_one_step_on_fake_images(path):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    cfg, model = _cityscapes_model(path)
    model.init_weights()  # no download: the test removed the ImageNet initialisation
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, 64, 128), dtype=torch.uint8, generator=g)
              for _ in range(2)]
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(64, 128), ori_shape=(64, 128)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, 64, 128), generator=g))
        samples.append(sample)
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    losses = model.train_step(dict(inputs=inputs, data_samples=samples), optim)
    for part in DIFFKD_PARTS + ('decode.loss_ce', 'aux.loss_ce'):
        assert part in losses and torch.isfinite(losses[part]), (part, sorted(losses))
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert any(k.startswith('student.backbone.') for k in changed)
    assert any(k.startswith('distill_losses.feat.') for k in changed)
    assert model.distill_losses.feat.teacher_channels == 2048
    assert model.distill_losses.logits.student_channels == 19
