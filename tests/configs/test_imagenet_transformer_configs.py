"""The transformer paper-protocol configs (configs/imagenet/): VkD DeiT-S -> DeiT-Ti in the
authors' DeiT form and DiffKD's Swin recipe (Swin-L -> Swin-T, final norm tokens + head). Each is
checked against mmpretrain's own configs and model zoo, then trains one iteration on two fake
64 px images (position embeddings resized, Swin windows padded: test-only overrides), with the
config's own optimizer. Teachers are random (``allow_untrained``): nothing is downloaded."""
import copy
import os.path as osp

import pytest
import torch
from helpers import REPO
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from tiny_models import cls_dataset, unscoped

import mmdiffkd.models  # noqa: F401
from mmdiffkd.models.distillers.transforms import (DropTokens, MeanTokens,
                                                   TokensToMap)
from mmdiffkd.registry import MODELS
from mmdiffkd.utils.builder import resolve_config_path

pytest.importorskip('mmcv.ops', reason='mmpretrain needs mmcv with ops')

VKD = 'vkd_feat-head_deit-small_deit-tiny-distilled_4xb256_in1k.py'
SWIN = 'diffkd_feat-logits_swin-large_swin-tiny_16xb64_in1k.py'
SIZE = 64


def _load(name):
    return Config.fromfile(osp.join(REPO, 'configs', 'imagenet', name))


def _metafile_weights(folder, name):
    import yaml
    with open(resolve_config_path(f'mmpretrain::{folder}/metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    (entry, ) = [m for m in models if m['Name'] == name]
    return entry['Weights']


def _small(model):
    model.backbone.img_size = SIZE
    if model.backbone.type == 'SwinTransformer':
        model.backbone.pad_small_map = True  # 64 px: the last stage is 2x2, below the window
    return model


def _one_iteration(cfg):
    """The distiller at 64 px with a random teacher (its experiment config, shrunk alike), one
    train step on two fake images with the config's own optimizer."""
    init_default_scope(cfg.default_scope)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)  # as MMEngine's Runner
    _small(model_cfg.student)
    teacher = Config.fromfile(resolve_config_path(model_cfg.teacher.config))
    _small(teacher.model)
    model_cfg.teacher = dict(config=teacher, checkpoint=None, allow_untrained=True)
    model_cfg.dry_run = dict(input_size=(SIZE, SIZE), in_channels=3)
    model = MODELS.build(model_cfg)
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    data = cls_dataset(n=2, size=SIZE)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    log = model.train_step(pseudo_collate([data[0], data[1]]), optim)
    assert all(torch.isfinite(v) for v in log.values()), log
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    return model, log, changed


def test_vkd_deit_config_is_the_deit_form():
    cfg = _load(VKD)
    deit = Config.fromfile(resolve_config_path('mmpretrain::deit/'
                                               'deit-tiny-distilled_4xb256_in1k.py'))
    assert unscoped(cfg.model.student) == unscoped(deit.model)  # mmpretrain's, unchanged
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert unscoped(cfg[key]) == unscoped(deit[key]), key
    assert cfg.model.teacher.config == 'mmpretrain::deit/deit-small_4xb256_in1k.py'
    assert cfg.model.teacher.checkpoint == _metafile_weights('deit', 'deit-small_4xb256_in1k')
    feat, head = cfg.model.distill_losses.feat, cfg.model.distill_losses.head_kl
    assert feat.loss.type == 'VkD' and feat.weight == 1.0
    assert (head.loss.type, head.loss.tau, head.weight) == ('KD', 1.0, 1.0)


def test_vkd_deit_config_trains_one_iteration():
    model, log, changed = _one_iteration(_load(VKD))
    (feat, ), (head, ) = (d.entries for d in model.declarations)
    assert feat.student.transforms == (DropTokens(2), MeanTokens())
    vkd = model.distill_losses.feat
    assert (vkd.student_channels, vkd.teacher_channels) == (192, 384)
    assert {'loss_student', 'loss_feat', 'loss_head_kl'} <= set(log)
    assert any(k.startswith('distill_losses.feat.projection') for k in changed)
    assert any(k.startswith('student.head.layers.head_dist') for k in changed)


def test_swin_config_is_the_diffkd_swin_recipe():
    cfg = _load(SWIN)
    swin = Config.fromfile(resolve_config_path('mmpretrain::swin_transformer/'
                                               'swin-tiny_16xb64_in1k.py'))
    assert unscoped(cfg.model.student) == unscoped(swin.model)
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert unscoped(cfg[key]) == unscoped(swin[key]), key
    teacher = Config.fromfile(resolve_config_path(cfg.model.teacher.config))
    assert teacher.model.backbone.arch == 'large'
    assert cfg.model.teacher.checkpoint == _metafile_weights(
        'swin_transformer', 'swin-large_in21k-pre-3rdparty_in1k')
    feat = cfg.model.distill_losses.feat
    assert feat.student.path == 'backbone.norm3' and 'teacher' not in feat  # same on both sides
    assert (feat.loss.type, feat.loss.use_ae, feat.loss.ae_channels) == ('DiffKD', True, 1024)


def test_swin_config_trains_one_iteration():
    model, log, changed = _one_iteration(_load(SWIN))
    feat = model.distill_losses.feat
    # Swin-T's final norm 768 wide, Swin-L's 1536, through the 1024-channel autoencoder
    assert (feat.student_channels, feat.teacher_channels, feat.channels) == (768, 1536, 1024)
    assert model.declarations[0].entries[0].teacher.transforms == (TokensToMap(), )
    assert model.distill_losses.logits.kernel_size == 1
    for part in ('loss_feat_distill', 'loss_feat_diffusion', 'loss_feat_ae',
                 'loss_logits_distill', 'loss_logits_diffusion'):
        assert part in log, (part, sorted(log))
    assert any(k.startswith('student.backbone.stages.3') for k in changed)
    assert any(k.startswith('distill_losses.feat.noise_predictor') for k in changed)
