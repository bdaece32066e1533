"""DiffKD inside the Distiller on the torch + MMEngine toy classifier: keys, training steps."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from tiny_models import toy_batch, toy_model

import mmdiffkd.models  # noqa: F401  (registers the losses and the distiller)
from mmdiffkd.models.diffkd import DiffKD
from mmdiffkd.registry import MODELS


def build(teacher_ckpt):
    losses = dict(
        feat=dict(loss=dict(type='DiffKD', use_ae=True, ae_channels=32), student='stage2',
                  teacher='stage2'),
        logits=dict(loss=dict(type='DiffKD', kernel_size=1), student='fc', teacher='fc',
                    weight=0.5))
    return MODELS.build(dict(type='Distiller', student=toy_model(8),
                             teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
                             distill_losses=losses, dry_run=dict(input_size=(16, 16))))


def test_diffkd_parts_are_logged_and_train(teacher_ckpt):
    torch.manual_seed(0)
    model = build(teacher_ckpt).train()
    feat, logits = model.distill_losses.feat, model.distill_losses.logits
    assert isinstance(feat, DiffKD) and isinstance(logits, DiffKD)
    # channels filled from the dry forward: stage2 is width * 4, fc has 4 classes
    assert (feat.student_channels, feat.teacher_channels) == (32, 64)
    assert (logits.student_channels, logits.teacher_channels) == (4, 4)

    data = model.data_preprocessor(toy_batch(), True)
    losses = model(**data, mode='loss')
    diagnostics = {f'{e}.{k}' for e in ('feat', 'logits')
                   for k in ('gamma', 'denoise_gain', 'aligned_mse')}
    assert set(losses) == {'loss_cls', 'loss_feat_distill', 'loss_feat_diffusion',
                           'loss_feat_ae', 'loss_logits_distill', 'loss_logits_diffusion'
                           } | diagnostics
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    # diagnostics are logged as they are (not weighted) and never carry a gradient
    assert all(not losses[k].requires_grad for k in diagnostics)
    assert 0 < losses['logits.gamma'] < 1
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert model.student.stem[0].weight.grad is not None
    assert all(p.grad is not None for p in feat.parameters())
    assert all(p.grad is not None for p in logits.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())

    # MMEngine's train_step: one optimiser step over student + DiffKD modules
    model.zero_grad()
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.01)))
    before = feat.noise_predictor.time_embed.weight.detach().clone()
    log_vars = model.train_step(toy_batch(seed=1), wrapper)
    assert 'loss_feat_diffusion' in log_vars and torch.isfinite(log_vars['loss'])
    # MMEngine logs the diagnostics and leaves them out of the total
    assert diagnostics <= set(log_vars)
    parts = sum(v for k, v in log_vars.items() if k.startswith('loss_'))
    assert torch.allclose(log_vars['loss'], parts)
    assert not torch.equal(before, feat.noise_predictor.time_embed.weight)

    # checkpoints keep weights and BatchNorm statistics, not the scheduler's tables
    state = model.state_dict()
    assert 'distill_losses.feat.noise_predictor.time_embed.weight' in state
    assert not any('scheduler' in k for k in state)


def test_batch_one_through_the_distiller(teacher_ckpt):
    """A per-GPU batch of one image: the logits DiffKD sees (1, 4) and still trains."""
    model = build(teacher_ckpt).train()
    data = model.data_preprocessor(toy_batch(n=1), True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()


def test_declaration_named_loss_cannot_log_diagnostics(teacher_ckpt):
    with pytest.raises(ValueError, match='contains "loss"'):
        MODELS.build(dict(type='Distiller', student=toy_model(8),
                          teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
                          distill_losses=dict(feat_loss=dict(loss=dict(type='DiffKD'),
                                                             student='stage2')),
                          dry_run=dict(input_size=(16, 16))))


def test_kernel_size_follows_the_record_unless_given(teacher_ckpt):
    """The distiller asks DiffKD.config_from_records: kernel 1 for (N, C) logits, 3 for maps."""
    def built(**feat_loss):
        losses = dict(feat=dict(loss=dict(type='DiffKD', **feat_loss), student='stage2',
                                teacher='stage2'),
                      logits=dict(loss=dict(type='DiffKD'), student='fc', teacher='fc'))
        return MODELS.build(dict(type='mmdiffkd.Distiller', student=toy_model(8),
                                 teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
                                 distill_losses=losses, dry_run=dict(input_size=(16, 16))))

    model = built()
    assert model.distill_losses.feat.kernel_size == 3
    assert model.distill_losses.logits.kernel_size == 1
    assert built(kernel_size=1).distill_losses.feat.kernel_size == 1  # explicit value wins
