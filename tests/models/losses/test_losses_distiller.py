"""Every loss through the Distiller on the torch + MMEngine toy classifier.

Checks the contract between losses and distiller: channels filled by the dry forward, labels
reaching DKD / AEKT from the batch's data samples, logged keys, gradients to the student and the
loss's own parts only.
"""
import pytest
import torch
from tiny_models import toy_batch, toy_model, toy_teacher_checkpoint

import mmdiffkd.models  # noqa: F401
from mmdiffkd.registry import MODELS

# name -> (loss cfg, record, teacher width, expected log keys)
CASES = {
    'KD': (dict(type='KD'), 'fc', 16, {'loss_d'}),
    'DIST': (dict(type='DIST'), 'fc', 16, {'loss_d_inter', 'loss_d_intra'}),
    'DKD': (dict(type='DKD'), 'fc', 16, {'loss_d_tckd', 'loss_d_nckd'}),
    'AEKT': (dict(type='AEKT'), 'fc', 16, {'loss_d_explicit', 'loss_d_implicit'}),
    'MSE': (dict(type='MSE'), 'stage2', 8, {'loss_d'}),
    'FitNets': (dict(type='FitNets'), 'stage2', 16, {'loss_d'}),
    'CWD': (dict(type='CWD'), 'stage2', 16, {'loss_d'}),
    'PKD': (dict(type='PKD'), 'stage2', 8, {'loss_d'}),
    'VkD': (dict(type='VkD', normalize='channel'), 'stage2', 16, {'loss_d'}),
    'RTK': (dict(type='RTK', embed_channels=8), 'stage2', 16, {'loss_d'}),
}


@pytest.fixture(scope='module')
def teacher_ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp('teachers')
    out = {}
    for width in (8, 16):
        out[width] = toy_teacher_checkpoint(root / f'teacher{width}.pth', width, seed=width)
    return out


@pytest.mark.parametrize('name', sorted(CASES))
def test_loss_trains_inside_the_distiller(name, teacher_ckpts):
    cfg, record, width, keys = CASES[name]
    model = MODELS.build(dict(
        type='Distiller', student=toy_model(8),
        teacher=dict(config=toy_model(width), checkpoint=teacher_ckpts[width]),
        distill_losses=dict(d=dict(loss=cfg, student=record, teacher=record)),
        dry_run=dict(input_size=(16, 16))))
    model.train()
    losses = model(**model.data_preprocessor(toy_batch(n=4), True), mode='loss')
    assert set(losses) == {'loss_cls'} | keys
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.student.stem[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    learned = list(model.distill_losses.parameters())
    assert all(p.grad is not None for p in learned)
    if name in ('FitNets', 'VkD', 'RTK', 'CWD'):  # channels 32 vs 64, filled by the dry forward
        loss = model.distill_losses.d
        assert (loss.student_channels, loss.teacher_channels) == (32, 64)
