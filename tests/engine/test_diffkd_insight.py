"""Seeing and steering DiffKD in a real run: diagnostics in the log, the visualisation hook, the
distillation warm-up and pre-training the DiffKD modules on teacher features (toy model, CPU)."""
import glob
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from helpers import REPO
from mmengine.runner import Runner
from tiny_models import toy_loader, toy_model

import mmdiffkd.models  # noqa: F401
from mmdiffkd.engine import DiffKDVisHook
from mmdiffkd.engine.diffkd_pretrain import pretrain_diffkd, save_distill_losses
from mmdiffkd.models.diffkd import DiffKD

DIAGNOSTICS = ('gamma', 'denoise_gain', 'aligned_mse')


def distiller(teacher_ckpt, feat_loss=None, **kwargs):
    feat_loss = feat_loss or dict(type='DiffKD', use_ae=True, ae_channels=32)
    return dict(type='mmdiffkd.Distiller', student=toy_model(8),
                teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
                distill_losses=dict(
                    feat=dict(loss=feat_loss, student='stage2', teacher='stage2'),
                    logits=dict(loss=dict(type='DiffKD', kernel_size=1), student='fc',
                                weight=0.5)),
                dry_run=dict(input_size=(16, 16)), **kwargs)


def make_runner(work_dir, model, max_iters=4, custom_hooks=(), val=True):
    extra = dict(val_dataloader=toy_loader(n=4), val_evaluator=dict(type='ToyAccuracy'),
                 val_cfg=dict()) if val else {}
    return Runner(model=model, work_dir=str(work_dir), experiment_name=f'insight{id(model)}',
                  train_dataloader=toy_loader(),
                  train_cfg=dict(by_epoch=False, max_iters=max_iters,
                                 val_interval=max_iters),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
                  default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                                     checkpoint=dict(type='CheckpointHook', interval=-1)),
                  custom_hooks=list(custom_hooks), randomness=dict(seed=0),
                  default_scope='mmengine', **extra)


def test_diagnostics_reach_the_log_and_stay_out_of_the_total(tmp_path, teacher_ckpt):
    runner = make_runner(tmp_path, distiller(teacher_ckpt))
    runner.train()
    scalars = runner.message_hub.log_scalars
    keys = {f'train/{e}.{d}' for e in ('feat', 'logits') for d in DIAGNOSTICS}
    assert keys <= set(scalars)
    for key in keys:
        values = scalars[key].data[0]
        assert len(values) == 4 and np.isfinite(values).all(), key
    gamma = scalars['train/feat.gamma'].data[0]
    assert ((gamma > 0) & (gamma < 1)).all()
    # the logged total is the sum of the loss parts only
    parts = [k for k in scalars if k.startswith('train/loss_')]
    total = sum(scalars[k].data[0] for k in parts)
    assert np.allclose(scalars['train/loss'].data[0], total, rtol=1e-5)
    # ... and the text log / scalars.json carry them
    rows = [json.loads(line) for path in glob.glob(osp.join(tmp_path, '*', 'vis_data',
                                                          'scalars.json'))
            for line in open(path)]
    assert any('feat.denoise_gain' in row for row in rows)


def test_vis_hook_writes_maps_and_curves(tmp_path, teacher_ckpt):
    hook = dict(type='mmdiffkd.DiffKDVisHook', interval=2, reduction='pca')
    runner = make_runner(tmp_path, distiller(teacher_ckpt), custom_hooks=[hook])
    runner.train()
    images = sorted(glob.glob(osp.join(tmp_path, '*', 'vis_data', 'vis_image', '*.png')))
    names = [osp.basename(p) for p in images]
    assert names == ['diffkd_curves_4.png', 'diffkd_denoise_2.png', 'diffkd_denoise_4.png']
    for path in images:
        img = np.asarray(Image.open(path))
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img.std() > 5  # not a blank canvas


def test_vis_hook_leaves_training_unchanged(tmp_path, teacher_ckpt):
    """The pictures use their own noise and restore every RNG: same weights with or without."""
    finals = []
    for name, hooks in (('plain', []), ('hook', [dict(type='mmdiffkd.DiffKDVisHook',
                                                      interval=1, reduction='mean_abs')])):
        runner = make_runner(tmp_path / name, distiller(teacher_ckpt), max_iters=3,
                             custom_hooks=hooks)
        runner.train()
        finals.append({k: v.clone() for k, v in runner.model.state_dict().items()})
    for k, v in finals[0].items():
        assert torch.equal(v, finals[1][k]), k


def test_vis_hook_maps_are_the_modules_outputs(teacher_ckpt, tmp_path):
    runner = make_runner(tmp_path, distiller(teacher_ckpt), max_iters=1)
    hook = DiffKDVisHook(interval=0)
    hook.before_train(runner)
    rows = dict(hook.denoised_maps(runner.model))
    assert set(rows) == {'feat', 'logits'}
    feat = rows['feat']
    assert feat['aligned'].shape == feat['refined'].shape == feat['target'].shape == (1, 32, 4, 4)
    assert rows['logits']['refined'].shape == (1, 4, 1, 1)
    assert runner.model.training  # restored


def test_vis_hook_bad_settings(tmp_path, teacher_ckpt):
    with pytest.raises(ValueError, match='reduction must be one of'):
        DiffKDVisHook(reduction='tsne')
    with pytest.raises(ValueError, match='interval must be an int >= 0'):
        DiffKDVisHook(interval=-5)
    runner = make_runner(tmp_path, distiller(teacher_ckpt), max_iters=1)
    with pytest.raises(IndexError, match=r'sample_index=99, but the dataset has 4 samples'):
        DiffKDVisHook(sample_index=99).before_train(runner)
    no_diffkd = distiller(teacher_ckpt, feat_loss=dict(type='FitNets'))
    no_diffkd['distill_losses'].pop('logits')
    runner = make_runner(tmp_path / 'mse', no_diffkd, max_iters=1)
    with pytest.raises(ValueError, match='no DiffKD declaration'):
        DiffKDVisHook().before_train(runner)


def test_warmup_through_the_runner(tmp_path, teacher_ckpt):
    """The warm-up factor follows the runner's iterations: 0, 1/3, 2/3, then 1."""
    feat = dict(type='DiffKD', use_ae=True, ae_channels=32, distill_warmup_iters=3)
    runner = make_runner(tmp_path, distiller(teacher_ckpt, feat_loss=feat), max_iters=5)
    runner.train()
    factors = runner.message_hub.log_scalars['train/feat.distill_factor'].data[0]
    assert np.allclose(factors, [0, 1 / 3, 2 / 3, 1, 1])
    distill = runner.message_hub.log_scalars['train/loss_feat_distill'].data[0]
    assert distill[0] == 0 and (distill[1:] > 0).all()


def test_pretraining_learns_the_teacher_and_loads_into_a_run(tmp_path, teacher_ckpt):
    runner = make_runner(tmp_path / 'pre', distiller(teacher_ckpt), val=False)
    model = runner.model
    loader = runner.build_dataloader(toy_loader(), seed=0)
    before = {k: v.clone() for k, v in model.distill_losses.state_dict().items()}
    student0 = {k: v.clone() for k, v in model.student.state_dict().items()}
    rows = pretrain_diffkd(model, loader, iters=30, lr=3e-3, log_interval=10)
    assert [r['iter'] for r in rows] == [10, 20, 30]
    assert rows[-1]['feat.diffusion'] < rows[0]['feat.diffusion']
    assert rows[-1]['feat.ae'] < rows[0]['feat.ae']
    after = model.distill_losses.state_dict()
    feat = model.distill_losses.feat
    # the teacher-only parts learnt; the parts fed by the student did not move
    assert not torch.equal(before['feat.noise_predictor.time_embed.weight'],
                           after['feat.noise_predictor.time_embed.weight'])
    assert not torch.equal(before['feat.autoencoder.enc_conv.weight'],
                           after['feat.autoencoder.enc_conv.weight'])
    for name in ('feat.align.weight', 'feat.noise_adapter.fc.weight', 'feat.proj_conv.weight'):
        assert torch.equal(before[name], after[name]), name
    for k, v in model.student.state_dict().items():
        assert torch.equal(v, student0[k]), f'student {k} changed'
    assert isinstance(feat, DiffKD)

    path = save_distill_losses(model, str(tmp_path / 'pre' / 'diffkd.pth'), dict(iters=30))
    run = make_runner(tmp_path / 'run', distiller(teacher_ckpt, init_distill_losses=path),
                      max_iters=1)
    run.model.init_weights()
    for k, v in run.model.distill_losses.state_dict().items():
        assert torch.equal(v, after[k]), k


def test_init_distill_losses_errors(tmp_path, teacher_ckpt):
    with pytest.raises(FileNotFoundError, match='init_distill_losses checkpoint'):
        make_runner(tmp_path, distiller(teacher_ckpt, init_distill_losses='nope.pth'))
    # a file of another distillation (other declarations) is refused, naming the keys
    other = make_runner(tmp_path / 'o', distiller(teacher_ckpt,
                                                  feat_loss=dict(type='DiffKD', use_ae=False)))
    path = save_distill_losses(other.model, str(tmp_path / 'other.pth'), {})
    run = make_runner(tmp_path / 'r', distiller(teacher_ckpt, init_distill_losses=path))
    with pytest.raises(Exception, match='autoencoder'):
        run.model.init_weights()


def test_pretrain_tool_end_to_end(tmp_path):
    """tools/pretrain_diffkd.py on a real mmpretrain config (Fashion-MNIST demo distillation)."""
    from tiny_models import teacher_checkpoint
    config = osp.join(REPO, 'configs', 'fashion_mnist',
                      'diffkd_feat-logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py')
    from mmengine.config import Config
    ckpt = teacher_checkpoint(Config.fromfile(config), str(tmp_path / 'teacher.pth'))
    out = tmp_path / 'pre.pth'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'pretrain_diffkd.py'), config,
           '--iters', '2', '--out', str(out), '--work-dir', str(tmp_path / 'w'),
           '--cfg-options', f'model.teacher.checkpoint={ckpt}',
           'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
           'train_dataloader.persistent_workers=False',
           '+train_dataloader.dataset.indices=16',
           f'train_dataloader.dataset.data_root={tmp_path / "data"}']
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(__import__('os').environ, OMP_NUM_THREADS='1'))
    assert done.returncode == 0, done.stderr[-3000:]
    saved = torch.load(out, weights_only=True)
    assert saved['meta']['iters'] == 2
    assert any(k.startswith('feat.noise_predictor.') for k in saved['state_dict'])
    bad = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'pretrain_diffkd.py'),
                          config, '--iters', '0'], capture_output=True, text=True)
    assert bad.returncode == 2 and '--iters=0' in bad.stderr
