"""Every classification config builds, and one training step of each runs on a few fake images
of its dataset's size: the Fashion-MNIST configs (1x28x28) and the paper-protocol ImageNet
configs (3x224x224). Teachers are random here (``allow_untrained``): nothing is downloaded."""
import copy
import glob
import os.path as osp

import pytest
import torch
from helpers import REPO
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmdiffkd.registry import MODELS

pytest.importorskip('mmpretrain', reason='needs mmpretrain (bash tools/setup.sh)')

FM = osp.join(REPO, 'configs', 'fashion_mnist')
STUDENT = osp.join(FM, 'resnet18-w4_1xb128_fashion-mnist.py')
TEACHER = osp.join(FM, 'resnet18-w16_1xb128_fashion-mnist.py')
FM_DISTILL = sorted(glob.glob(osp.join(FM, '*_resnet18-w16_resnet18-w4_*.py')))
# the B1-recipe ResNet configs (the transformer ones: test_imagenet_transformer_configs.py)
IMAGENET = sorted(glob.glob(osp.join(REPO, 'configs', 'imagenet', '*_8xb32_in1k.py')))


def _build(cfg):
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None:  # what MMEngine's Runner does
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if model_cfg.get('type') == 'mmdiffkd.Distiller':
        model_cfg.teacher = dict(config=model_cfg.teacher.config, checkpoint=None,
                                 allow_untrained=True)
        return MODELS.build(model_cfg)
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    return PRETRAIN_MODELS.build(model_cfg)


def _fake_batch(channels, size, n, classes):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (channels, size, size), dtype=torch.uint8, generator=g)
              for _ in range(n)]
    samples = [DataSample().set_gt_label(i % classes) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def _one_step(cfg, batch):
    # the iteration MMEngine's Runner records (DiffKD's distillation warm-up reads it)
    MessageHub.get_current_instance().update_info('iter', 0)
    model = _build(cfg)
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    losses = model.train_step(batch, optim)
    assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    return model, losses, changed


def test_fashion_mnist_configs_found():
    names = {osp.basename(p).split('_')[0] for p in FM_DISTILL}
    assert names == {'kd', 'dist', 'dkd', 'fitnets', 'cwd', 'vkd', 'rtk', 'aekt', 'diffkd',
                     'diffkd-paper', 'diffkd-kd', 'diffkd-dist'}


@pytest.mark.parametrize('path', [TEACHER, STUDENT])
def test_plain_model_configs_train_one_step(path):
    cfg = Config.fromfile(path)
    model, losses, changed = _one_step(cfg, _fake_batch(1, 28, 4, 10))
    assert 'loss' in losses and any(k.startswith('backbone.conv1') for k in changed)


def test_student_is_much_smaller_than_teacher():
    teacher = _build(Config.fromfile(TEACHER))
    student = _build(Config.fromfile(STUDENT))
    n_t = sum(p.numel() for p in teacher.parameters())
    n_s = sum(p.numel() for p in student.parameters())
    assert n_t > 10 * n_s, (n_t, n_s)


@pytest.mark.parametrize('path', FM_DISTILL, ids=osp.basename)
def test_fashion_mnist_distill_configs_train_one_step(path):
    cfg = Config.fromfile(path)
    # Each distillation config is the student config plus a short block: same data, schedule
    # and student model.
    student_cfg = Config.fromfile(STUDENT)
    assert cfg.model.student == student_cfg.model
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper', 'param_scheduler',
                'train_cfg'):
        if key == 'optim_wrapper' and 'aekt' in osp.basename(path):
            # AEKT adds gradient clipping (it diverges at lr 0.1 without): nothing else differs
            expected = copy.deepcopy(student_cfg[key])
            expected['clip_grad'] = dict(max_norm=5.0, norm_type=2)
            assert cfg[key] == expected
            continue
        assert cfg[key] == student_cfg[key], key
    model, losses, changed = _one_step(cfg, _fake_batch(1, 28, 4, 10))
    assert any(k.startswith('student.backbone.conv1') for k in changed)
    assert not any(k.startswith('teacher.') for k in model.state_dict())
    names = set(cfg.model.distill_losses)
    for name in names:
        assert any(k.startswith(f'loss_{name}') for k in losses), (name, sorted(losses))
    if 'feat' in names:  # DiffKD's own modules learn with the student
        assert any(k.startswith('distill_losses.feat') for k in changed)


@pytest.mark.parametrize('path', IMAGENET, ids=osp.basename)
def test_imagenet_paper_configs_train_one_step(path):
    cfg = Config.fromfile(path)
    # The B1 recipe: SGD lr 0.1, wd 1e-4, 8 x 32 images, 100 epochs, x0.1 at 30 / 60 / 90.
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.1, 0.9, 1e-4)
    assert cfg.train_dataloader.batch_size == 32 and cfg.auto_scale_lr.base_batch_size == 256
    assert cfg.train_cfg.max_epochs == 100
    sched = cfg.param_scheduler
    assert sched.type == 'MultiStepLR' and list(sched.milestones) == [30, 60, 90]
    assert sched.gamma == 0.1
    feat = cfg.model.distill_losses.feat.loss
    assert feat.type == 'DiffKD' and feat.ae_channels == 1024 and feat.use_ae
    model, losses, changed = _one_step(cfg, _fake_batch(3, 224, 2, 1000))
    for part in ('loss_feat_distill', 'loss_feat_diffusion', 'loss_feat_ae',
                 'loss_logits_distill', 'loss_logits_diffusion'):
        assert part in losses, (part, sorted(losses))
    assert any(k.startswith('student.') for k in changed)
    # mmpretrain keeps ImageNet's mean/std in the top-level data_preprocessor: both models use it
    for member in (model.student, model.teacher):
        assert member.data_preprocessor.mean.flatten()[0].item() == pytest.approx(123.675)
