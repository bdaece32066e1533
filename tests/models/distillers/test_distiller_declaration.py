"""The plan's pieces on their own: declarations (parsing and refusals), record transforms, the
loss contract, teacher renormalisation. Real models: test_distiller_real_configs.py."""
import pytest
import torch
import torch.nn as nn
from tiny_models import toy_batch, toy_model

import mmdiffkd.models  # noqa: F401
from mmdiffkd.models.distillers import renorm
from mmdiffkd.models.distillers.declaration import Declaration, parse_declarations
from mmdiffkd.models.distillers.transforms import (DropTokens, MapToTokens, MeanTokens,
                                                   TokensToMap, build_transforms)
from mmdiffkd.models.losses.base import DistillLoss
from mmdiffkd.registry import MODELS


# ---- transforms --------------------------------------------------------------------------------

def test_transforms_reshape_records():
    x = torch.arange(2 * 18 * 3, dtype=torch.float32).view(2, 18, 3)
    assert torch.equal(DropTokens(2)(x), x[:, 2:])
    assert torch.equal(MeanTokens()(x), x.mean(1))
    patches = DropTokens(2)(x)
    grid = TokensToMap()(patches)
    assert grid.shape == (2, 3, 4, 4)
    assert torch.equal(grid[:, :, 1, 2], patches[:, 1 * 4 + 2])  # row-major positions
    assert torch.equal(MapToTokens()(grid), patches)
    assert TokensToMap(hw=[2, 8])(patches).shape == (2, 3, 2, 8)


@pytest.mark.parametrize('transform, shape, match', [
    (TokensToMap(), (2, 17, 3), r'17 tokens are not a square grid \(16 = 4\^2: drop the 1'),
    (TokensToMap(hw=(3, 5)), (2, 16, 3), r'the grid \(3, 5\) has 15 positions'),
    (DropTokens(2), (2, 2, 3), 'needs more than 2 tokens'),
    (MeanTokens(), (2, 3, 4, 4), r"map: add 'map_to_tokens'"),
    (MapToTokens(), (2, 3), r'takes \(B, C, H, W\) maps'),
])
def test_transforms_refuse_what_they_cannot_take(transform, shape, match):
    with pytest.raises(ValueError, match=match):
        transform(torch.zeros(shape))


def test_build_transforms_forms_and_errors():
    assert build_transforms(None, 'x') == ()
    assert build_transforms('mean_tokens', 'x') == (MeanTokens(), )
    assert build_transforms([dict(type='drop_tokens', n=2), 'tokens_to_map'], 'x') == \
        (DropTokens(2), TokensToMap())
    with pytest.raises(KeyError, match=r"unknown transform 'pool'.*'drop_tokens'"):
        build_transforms('pool', 'distill_losses.f.student')
    with pytest.raises(TypeError, match='distill_losses.f.student.transform mean_tokens'):
        build_transforms(dict(type='mean_tokens', n=1), 'distill_losses.f.student')
    with pytest.raises(ValueError, match='n must be an int >= 1'):
        build_transforms(dict(type='drop_tokens', n=0), 'x')


# ---- declarations ------------------------------------------------------------------------------

def test_sides_short_and_long_forms():
    (d, ) = parse_declarations(dict(f=dict(
        loss=dict(type='VkD'),
        student=dict(path='backbone.ln1', transform=[dict(type='drop_tokens', n=2),
                                                     'mean_tokens']),
        teacher=dict(path='backbone', index=-1))))
    (e, ) = d.entries
    assert (e.key, e.module_key, d.single) == ('f', None, True)
    assert e.student.path == 'backbone.ln1' and e.student.index is None
    assert e.student.transforms == (DropTokens(2), MeanTokens())
    assert e.teacher.index == -1 and e.teacher.transforms == ()
    assert e.student.describe() == ('student record "backbone.ln1" '
                                    'transform=[drop_tokens(n=2), mean_tokens]')
    # the teacher side defaults to the student's, options included
    (d, ) = parse_declarations(dict(f=dict(loss=dict(type='MSE'),
                                           student=dict(path='neck', index=0))))
    assert d.entries[0].teacher.path == 'neck' and d.entries[0].teacher.index == 0
    with pytest.raises(Exception):
        d.entries[0].weight = 2.0  # frozen


def test_list_expansion_labels_and_shared_keys():
    (d, ) = parse_declarations(dict(fpn=dict(loss=dict(type='MSE'), student='neck',
                                             teacher=dict(path='neck', transform='map_to_tokens'),
                                             index=[0, (1, 2)], share=False)))
    assert [e.key for e in d.entries] == ['fpn_0', 'fpn_1_2']
    assert [e.teacher.index for e in d.entries] == [0, (1, 2)]
    assert all(e.teacher.transforms == (MapToTokens(), ) for e in d.entries)
    (d, ) = parse_declarations(dict(rpn=dict(loss=dict(type='MSE'), student='conv',
                                             call=[0, -1])))
    assert [e.student.calls_needed for e in d.entries] == [1, float('inf')]


@pytest.mark.parametrize('decl, error, match', [
    (dict(loss=dict(type='MSE', loss_weight=2.0), student='a'), ValueError,
     r"distill_losses.f.loss has loss_weight=2.0.*Write distill_losses.f.weight=2.0"),
    (dict(loss=dict(type='MSE'), student=dict(path='a', idx=0)), KeyError,
     r"distill_losses.f.student has unknown keys \['idx'\]"),
    (dict(loss=dict(type='MSE'), student=dict(index=0)), KeyError, 'needs "path"'),
    (dict(loss=dict(type='MSE'), student=dict(path='a', index=0), index=1), ValueError,
     r"sets \['index'\], which the declaration also sets"),
    (dict(loss=dict(type='MSE'), student=dict(path='a', index=[0, 1])), ValueError,
     r'distill_losses.f.student.index is a list.*distill_losses.f.index=\[...\]'),
    (dict(loss=dict(type='MSE'), student='a', index=[0, 1], call=[0, 1]), ValueError,
     'both lists'),
    (dict(loss=dict(type='MSE'), student='a', share='yes'), ValueError, 'share'),
    (dict(loss='MSE', student='a'), TypeError, 'must be a dict with "type"'),
    (dict(loss=dict(type='MSE'), student=3), TypeError, 'module path or dict'),
])
def test_bad_declarations_are_refused_naming_the_key(decl, error, match):
    with pytest.raises(error, match=match):
        Declaration.parse('f', decl)


class _PlainLoss(nn.Module):
    def forward(self, student, teacher):
        return (student - teacher).pow(2).mean()


def test_a_loss_outside_the_contract_is_refused():
    MODELS.register_module(name='_PlainLossForTest', module=_PlainLoss, force=True)
    with pytest.raises(TypeError, match='is not a mmdiffkd.models.losses.base.DistillLoss'):
        Declaration.parse('f', dict(loss=dict(type='_PlainLossForTest'), student='a'))


def test_every_registered_loss_follows_the_contract():
    from mmdiffkd.models import losses  # noqa: F401
    names = ['DiffKD', 'KD', 'DIST', 'DKD', 'FitNets', 'CWD', 'PKD', 'VkD', 'RTK', 'AEKT', 'MSE']
    for name in names:
        cls = MODELS.get(f'mmdiffkd.{name}')
        assert issubclass(cls, DistillLoss), name
        assert set(cls.record_dims) <= {2, 3, 4, 5}, name
    with_channels = {n for n in names if MODELS.get(f'mmdiffkd.{n}').takes_channels}
    assert with_channels == {'DiffKD', 'FitNets', 'CWD', 'VkD', 'RTK', 'AEKT'}
    assert {n for n in names if MODELS.get(f'mmdiffkd.{n}').uses_samples} == {'DKD', 'AEKT'}


# ---- through the distiller (toy model) ----------------------------------------------------------

def _build(teacher_ckpt, losses):
    return MODELS.build(dict(type='Distiller', student=toy_model(8),
                             teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
                             distill_losses=losses, dry_run=dict(input_size=(16, 16))))


def test_shape_errors_come_at_build_with_the_fix(teacher_ckpt):
    # no adapter between widths (32 vs 64): refused at build, not at the first step
    with pytest.raises(ValueError) as err:
        _build(teacher_ckpt, dict(f=dict(loss=dict(type='MSE'), student='stage2')))
    assert 'MSE has no adapter' in str(err.value) and 'FitNets' in str(err.value)
    # tokens against a map of another grid: the transform to add, not resize
    with pytest.raises(ValueError) as err:
        _build(teacher_ckpt, dict(f=dict(loss=dict(type='FitNets'),
                                         student=dict(path='stage2', transform='map_to_tokens'),
                                         teacher='stage1')))
    msg = str(err.value)
    assert "student side transform='tokens_to_map'" in msg and 'positions (16,)' in msg
    # resize is for maps only
    with pytest.raises(ValueError, match='resize=.student. resizes'):
        _build(teacher_ckpt, dict(f=dict(loss=dict(type='FitNets'), resize='student',
                                         student=dict(path='stage2', transform='map_to_tokens'),
                                         teacher='stage1')))


def test_map_tokens_round_trip_trains(teacher_ckpt):
    model = _build(teacher_ckpt, dict(
        f=dict(loss=dict(type='RTK', embed_channels=8),
               student=dict(path='stage2', transform='map_to_tokens'),
               teacher=dict(path='stage1', transform='map_to_tokens'))))
    model.train()
    data = model.data_preprocessor(toy_batch(), True)
    _, (pair, ) = model.distill_pairs(data['inputs'], data['data_samples'])
    assert pair.student.shape == (2, 16, 32) and pair.teacher.shape == (2, 64, 32)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss_f'])


# ---- teacher renormalisation (pure) -------------------------------------------------------------

def test_renorm_is_the_teachers_own_normalisation():
    s = renorm.InputNorm(torch.tensor([10., 20., 30.]), torch.tensor([2., 4., 5.]), swap=False)
    t = renorm.InputNorm(torch.tensor([1., 2., 3.]), torch.tensor([3., 3., 3.]), swap=True)
    raw = torch.rand(2, 3, 4, 4) * 255
    x_s = (raw - s.mean.view(1, 3, 1, 1)) / s.std.view(1, 3, 1, 1)
    x_t = (raw.flip(1) - t.mean.view(1, 3, 1, 1)) / t.std.view(1, 3, 1, 1)
    affine = renorm.renorm(s, t)
    torch.testing.assert_close(affine(x_s), x_t, rtol=1e-5, atol=1e-4)
    assert renorm.renorm(s, s) is None
    none = renorm.InputNorm(None, None, False)
    assert renorm.renorm(none, none) is None
    assert renorm.renorm(none, renorm.InputNorm(None, None, True)).flip
