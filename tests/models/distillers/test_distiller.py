"""Distiller on the torch + MMEngine toy classifier: building, losses, freezing, checkpoints,
errors.

Real detection / segmentation / classification models are in test_distiller_tasks.py.
"""
import copy
import gc

import pytest
import torch
import torch.nn as nn
from helpers import count_hooks
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS as ROOT_MODELS
from tiny_models import save_weights, toy_batch, toy_model

import mmdiffkd.models  # noqa: F401  (registers losses and the distiller)
from mmdiffkd.models.distillers import Distiller
from mmdiffkd.registry import MODELS


def build(teacher_ckpt, losses=None, **kwargs):
    losses = losses if losses is not None else dict(
        feat=dict(loss=dict(type='FitNets'), student='stage2', teacher='stage2'),
        logits=dict(loss=dict(type='KD', tau=2.0), student='fc', weight=0.5))
    return MODELS.build(dict(type='Distiller', student=toy_model(8),
                             teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
                             distill_losses=losses, dry_run=dict(input_size=(16, 16)), **kwargs))


def step_inputs(model, seed=0):
    return model.data_preprocessor(toy_batch(seed=seed), True)


def test_teacher_frozen_hidden_and_loaded(teacher_ckpt):
    model = build(teacher_ckpt)
    saved = torch.load(teacher_ckpt, weights_only=True)['state_dict']
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, saved[k]), k
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in model.parameters()}
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert not any(k.startswith('teacher.') for k in model.state_dict())
    # the optimizer MMEngine builds from the model holds every trainable parameter, no teacher one
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.1)))
    in_optim = {id(p) for g in optim.optimizer.param_groups for p in g['params']}
    assert in_optim == {id(p) for p in model.parameters()}
    # FitNets' regressor (student 32 -> teacher 64 channels) is trained with the student
    assert model.distill_losses.feat.regressor.weight.shape == (64, 32)
    model.train()
    assert model.student.training and not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())


def test_loss_keys_weights_and_gradients(teacher_ckpt):
    model = build(teacher_ckpt)
    model.train()
    losses = model(**step_inputs(model), mode='loss')
    assert set(losses) == {'loss_cls', 'loss_feat', 'loss_logits'}
    # weight multiplies the loss: compare with the loss module called by hand
    plain = build(teacher_ckpt, losses=dict(logits=dict(loss=dict(type='KD', tau=2.0),
                                                         student='fc')))
    plain.student.load_state_dict(model.student.state_dict())
    model.eval()  # no dropout, so both runs are deterministic
    plain.eval()
    a = plain(**step_inputs(plain), mode='loss')['loss_logits']
    b = model(**step_inputs(model), mode='loss')['loss_logits']
    assert torch.allclose(b, 0.5 * a)
    sum(losses.values()).backward()
    assert model.student.stem[0].weight.grad is not None
    assert model.distill_losses.feat.regressor.weight.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())


def test_predict_and_tensor_delegate_to_student(teacher_ckpt):
    model = build(teacher_ckpt).eval()
    data = step_inputs(model)
    assert torch.equal(model(data['inputs'], mode='tensor'),
                       model.student(data['inputs'], mode='tensor'))
    preds = model.val_step(toy_batch())
    assert all('pred_label' in p for p in preds)
    # nothing recorded outside mode='loss'
    assert not model.student_records.records and not model.teacher_records.records


def test_index_list_expands_and_share(teacher_ckpt):
    losses = dict(stages=dict(loss=dict(type='FitNets'), student='student_feats',
                              teacher='student_feats', index=[0, 1]))
    # ToyClassifier.features returns (stage1, stage2); hook it through a wrapper module path
    student, teacher = ROOT_MODELS.build(toy_model(8)), ROOT_MODELS.build(toy_model(16))
    teacher.load_state_dict(torch.load(teacher_ckpt, weights_only=True)['state_dict'])
    for m in (student, teacher):
        m.student_feats = _Features(m)
        m.forward = _forward_through(m)
    model = Distiller(student, teacher, distill_losses=losses, dry_run=dict(input_size=(16, 16)))
    out = model(**step_inputs(model), mode='loss')
    assert {'loss_stages_0', 'loss_stages_1'} <= set(out)
    assert model.distill_losses.stages['0'].regressor.weight.shape == (32, 16)
    assert model.distill_losses.stages['1'].regressor.weight.shape == (64, 32)
    # share=True needs equal channels: stage1 and stage2 differ, so it is refused
    with pytest.raises(ValueError, match='share=True'):
        Distiller(student, teacher, distill_losses=dict(
            s=dict(losses['stages'], share=True)), dry_run=dict(input_size=(16, 16)))


class _Features(nn.Module):
    """Runs the model's two stages, so a declaration can index its (stage1, stage2) output."""

    def __init__(self, model):
        super().__init__()
        object.__setattr__(self, 'model', model)

    def forward(self, x):
        return self.model.features(x)


def _forward_through(m):
    import torch.nn.functional as F

    def forward(inputs, data_samples=None, mode='tensor'):
        s1, s2 = m.student_feats(inputs)
        logits = m.fc(s2.mean((2, 3)))
        if mode == 'loss':
            return dict(loss_cls=F.cross_entropy(
                logits, torch.stack([d.gt_label for d in data_samples])))
        return logits
    return forward


def test_call_selects_repeated_module(teacher_ckpt):
    model = build(teacher_ckpt, losses=dict(feat=dict(loss=dict(type='FitNets'),
                                                      student='stage2', teacher='stage2')))
    # a module that runs twice per forward (like a head shared over FPN levels)
    for m in (model.student, model.teacher):
        m.twice = nn.Identity()
        orig = m.stage2.forward

        def fwd(x, orig=orig, m=m):
            y = orig(x)
            return m.twice(m.twice(y) * 2)
        m.stage2.forward = fwd
    s = Distiller(model.student, model.teacher, distill_losses=dict(
        tw=dict(loss=dict(type='FitNets'), student='twice', call=[0, 1])),
        dry_run=dict(input_size=(16, 16)))
    out = s(**step_inputs(s), mode='loss')
    assert {'loss_tw_0', 'loss_tw_1'} <= set(out)
    with pytest.raises(RuntimeError, match='ran 2 times'):
        Distiller(model.student, model.teacher, distill_losses=dict(
            tw=dict(loss=dict(type='FitNets'), student='twice')),
            dry_run=dict(input_size=(16, 16)))


def test_teacher_stops_early(teacher_ckpt):
    model = build(teacher_ckpt, losses=dict(f=dict(loss=dict(type='FitNets'), student='stage1',
                                                   teacher='stage1')))
    ran = []
    model.teacher.fc.register_forward_hook(lambda *a: ran.append('fc'))
    model.teacher.stage1.register_forward_hook(lambda *a: ran.append('stage1'), prepend=True)
    model(**step_inputs(model), mode='loss')
    assert ran == ['stage1']  # the teacher's stage2 and head never ran
    model.stop_teacher_early = False
    ran.clear()
    model(**step_inputs(model), mode='loss')
    assert ran == ['stage1', 'fc']


def test_records_cleared_and_hooks_removed_on_delete(teacher_ckpt):
    model = build(teacher_ckpt)
    student, teacher = model.student, model.teacher
    assert count_hooks(student) == 2 and count_hooks(teacher) == 2
    for seed in range(3):
        model(**step_inputs(model, seed), mode='loss')
        assert not model.student_records.records and not model.teacher_records.records
    del model
    gc.collect()
    assert count_hooks(student) == 0 and count_hooks(teacher) == 0


def test_deepcopy_records_into_the_copy(teacher_ckpt):
    """EMAHook deep-copies the model; the copy's hooks must feed the copy's own records."""
    model = build(teacher_ckpt)
    clone = copy.deepcopy(model)
    out = clone(**step_inputs(clone), mode='loss')
    assert 'loss_feat' in out
    assert clone.student_records is not model.student_records


def test_keep_teacher_in_checkpoint_roundtrip(teacher_ckpt):
    model = build(teacher_ckpt, keep_teacher_in_checkpoint=True)
    sd = model.state_dict()
    assert any(k.startswith('teacher.') for k in sd)
    other = build(teacher_ckpt, keep_teacher_in_checkpoint=True)
    with torch.no_grad():
        for p in other.teacher.parameters():
            p.zero_()
    other.load_state_dict(sd, strict=True)
    for a, b in zip(other.teacher.parameters(), model.teacher.parameters()):
        assert torch.equal(a, b)
    # a model without the flag loads the same checkpoint (teacher keys go to its teacher)
    build(teacher_ckpt).load_state_dict(sd, strict=True)


def test_to_moves_the_hidden_teacher(teacher_ckpt):
    model = build(teacher_ckpt).to(torch.float64)
    assert next(model.teacher.parameters()).dtype == torch.float64
    assert next(model.student.parameters()).dtype == torch.float64


def test_renormalizes_teacher_inputs(teacher_ckpt):
    teacher_cfg = toy_model(16)
    teacher_cfg['data_preprocessor'] = dict(type='ImgDataPreprocessor', mean=[10.0, 20.0, 30.0],
                                            std=[2.0, 3.0, 4.0], bgr_to_rgb=True)
    model = MODELS.build(dict(type='Distiller', student=toy_model(8),
                              teacher=dict(config=teacher_cfg, checkpoint=teacher_ckpt),
                              dry_run=dict(input_size=(16, 16))))
    batch = toy_batch()
    mine = model.teacher_inputs(model.data_preprocessor(batch, False)['inputs'])
    theirs = model.teacher.data_preprocessor(batch, False)['inputs']
    assert torch.allclose(mine, theirs, atol=1e-4)
    same = build(teacher_ckpt)
    x = same.data_preprocessor(batch, False)['inputs']
    assert same.teacher_inputs(x) is x


# ---- bad input -----------------------------------------------------------------------------------

def test_wrong_path_lists_close_paths(teacher_ckpt):
    with pytest.raises(KeyError) as err:
        build(teacher_ckpt, losses=dict(f=dict(loss=dict(type='MSE'), student='stage3')))
    msg = str(err.value)
    assert 'stage3' in msg and 'stage2' in msg and 'stage1' in msg


def test_building_installs_the_safe_loaders():
    """MMEngine loads the student's init_cfg and the runner's load_from through its own
    schemes: the distiller puts mmdiffkd's weights_only loaders back when it is built."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_http

    from mmdiffkd.utils.checkpoint import load_from_http_safe
    CheckpointLoader.register_scheme(('http://', 'https://'), load_from_http, force=True)
    MODELS.build(dict(type='Distiller', student=toy_model(8),
                      teacher=dict(config=toy_model(16), checkpoint=None, allow_untrained=True),
                      dry_run=dict(input_size=(16, 16))))
    assert CheckpointLoader._get_checkpoint_loader('https://x.org/a.pth') is load_from_http_safe


def test_missing_teacher_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        build(str(tmp_path / 'nope.pth'))
    with pytest.raises(ValueError, match='allow_untrained'):
        MODELS.build(dict(type='Distiller', student=toy_model(8),
                          teacher=dict(config=toy_model(16))))
    # explicit opt-in for smoke tests
    MODELS.build(dict(type='Distiller', student=toy_model(8),
                      teacher=dict(config=toy_model(16), checkpoint=None, allow_untrained=True)))


def test_teacher_checkpoint_of_other_architecture(tmp_path):
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2))
    path = save_weights(other, str(tmp_path / 'other.pth'))
    with pytest.raises(RuntimeError) as err:
        build(path)
    msg = str(err.value)
    assert 'stem.0.weight' in msg  # missing
    assert '0.weight' in msg  # unexpected


def test_explicit_wrong_channels(teacher_ckpt):
    with pytest.raises(ValueError) as err:
        build(teacher_ckpt, losses=dict(f=dict(loss=dict(type='FitNets', teacher_channels=512),
                                               student='stage2', teacher='stage2')))
    assert '512' in str(err.value) and '64' in str(err.value)
    # a right explicit value is accepted
    build(teacher_ckpt, losses=dict(f=dict(loss=dict(type='FitNets', teacher_channels=64),
                                           student='stage2', teacher='stage2')))


def test_spatial_mismatch_error_and_resize(teacher_ckpt):
    decl = dict(loss=dict(type='FitNets'), student='stage1', teacher='stage2')
    with pytest.raises(ValueError) as err:
        build(teacher_ckpt, losses=dict(f=decl))
    assert '(8, 8)' in str(err.value) and '(4, 4)' in str(err.value) and 'resize' in str(err.value)
    model = build(teacher_ckpt, losses=dict(f=dict(decl, resize='student')))
    assert torch.isfinite(model(**step_inputs(model), mode='loss')['loss_f'])


@pytest.mark.parametrize('decl, match', [
    (dict(loss=dict(type='MSE'), student='stage2', bogus=1), 'bogus'),
    (dict(loss=dict(type='MSE'), student='stage2', resize='both'), 'resize'),
    (dict(loss=dict(type='MSE'), student='stage2', source='grad'), 'source'),
    (dict(loss=dict(type='MSE'), student='stage2', weight=-1), 'weight'),
    (dict(loss=dict(type='NoSuchLoss'), student='stage2'), 'NoSuchLoss'),
    (dict(student='stage2'), '"loss"'),
])
def test_bad_declarations(teacher_ckpt, decl, match):
    with pytest.raises((KeyError, ValueError)) as err:
        build(teacher_ckpt, losses=dict(f=decl))
    assert match in str(err.value)


def test_unknown_model_type_names_scopes(teacher_ckpt):
    with pytest.raises(KeyError, match='_scope_'):
        MODELS.build(dict(type='Distiller', student=dict(type='NoSuchDetector'),
                          teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt)))


def test_student_checkpoint_loaded_after_init_weights(teacher_ckpt, tmp_path):
    torch.manual_seed(3)
    init = save_weights(ROOT_MODELS.build(toy_model(8)), str(tmp_path / 'student.pth'))
    model = MODELS.build(dict(type='Distiller',
                              student=dict(config=toy_model(8), checkpoint=init),
                              teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
                              dry_run=dict(input_size=(16, 16))))
    teacher0 = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    model.init_weights()  # what the Runner calls before training
    saved = torch.load(init, weights_only=True)['state_dict']
    for k, v in model.student.state_dict().items():
        assert torch.equal(v, saved[k]), k
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher0[k]), k  # init_weights never touches the teacher
    with pytest.raises(FileNotFoundError, match='student checkpoint'):
        MODELS.build(dict(type='Distiller',
                          student=dict(config=toy_model(8), checkpoint=str(tmp_path / 'no.pth')),
                          teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt)))


def test_config_file_with_base_model(tmp_path):
    """The form users write: student={{_base_.model}}, teacher config by {{fileDirname}} path."""
    import os.path as osp

    from mmengine.config import Config
    from tiny_models import CONFIG_DIR
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'toy', 'distill_toy_cls.py'))
    assert cfg.model.student.type == 'ToyClassifier' and cfg.model.student.width == 8
    model = ROOT_MODELS.build(cfg.model)
    assert model.distill_losses.stage2.student_channels == 32
    assert model.distill_losses.stage2.teacher_channels == 64
    out = model(**step_inputs(model), mode='loss')
    assert {'loss_cls', 'loss_stage2_distill', 'loss_stage2_diffusion', 'loss_logits'} <= set(out)
