"""The baselines against the public implementations users take their numbers from (issue 15).

mdistiller (DKD, FitNet), MMRazor 1.0 (DKDLoss, KLDivergence, L2Loss, ConvModuleConnector) and
the VkD authors' code, restated here from their published formulas on hand-computable tensors:
DKD distils every class of (B, K) logits (ImageNet's 255 too), its target-class term keeps
float32 precision, its warm-up follows the authors' per-epoch schedule through MMEngine's Runner
(and a resume), FitNets offers the references' conv + BN + ReLU regressor and MMRazor's
normalised L2, VkD refuses an affine that cannot act, and the weight factors in
docs/methods.md hold.
"""
import math
import os
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from tiny_models import toy_batch, toy_loader, toy_model, toy_teacher_checkpoint

import mmdiffkd.models  # noqa: F401
from mmdiffkd.models.losses import AEKT, DKD, KD, FitNets, VkD
from mmdiffkd.models.losses._utils import EpochWarmup
from mmdiffkd.registry import MODELS


def total(out):
    return out['tckd'] + out['nckd']


# ---- DKD: no label is ignored in (B, K) logits --------------------------------------------------

def dkd_by_hand(s, t, y, alpha, beta, tau):
    """One sample's DKD from the paper's definitions, in Python floats."""
    def parts(z):
        e = [math.exp(v / tau) for v in z]
        p_target = e[y] / sum(e)
        rest = [v for k, v in enumerate(e) if k != y]
        return [p_target, 1 - p_target], [v / sum(rest) for v in rest]

    (bs, qs), (bt, qt) = parts(s), parts(t)
    kl = sum(a * math.log(a / b) for a, b in zip(bt, bs))
    nckd = sum(a * math.log(a / b) for a, b in zip(qt, qs))
    return tau ** 2 * (alpha * kl + beta * nckd)


def test_dkd_distils_class_255_of_imagenet_logits():
    torch.manual_seed(0)
    s, t = torch.randn(3, 300, dtype=torch.float64), torch.randn(3, 300, dtype=torch.float64)
    y = torch.tensor([255, 3, 255])
    out = DKD(alpha=1.0, beta=0.5, tau=2.0)(s, t, y)
    hand = sum(dkd_by_hand(s[i].tolist(), t[i].tolist(), int(y[i]), 1.0, 0.5, 2.0)
               for i in range(3)) / 3
    assert total(out).item() == pytest.approx(hand, rel=1e-10)
    # class 255 is a class like any other: swap columns 255 and 7, label 7, same loss
    perm = torch.arange(300)
    perm[[7, 255]] = perm[[255, 7]]
    swapped = DKD(alpha=1.0, beta=0.5, tau=2.0)(s[:, perm], t[:, perm], torch.tensor([7, 3, 7]))
    assert total(swapped).item() == pytest.approx(total(out).item(), rel=1e-12)
    # ignore_index still drops pixels of dense logits (mmseg's 255)
    dense = DKD()(s.T[None, :, :, None], t.T[None, :, :, None], torch.tensor([[[255], [3], [0]]]))
    dense_kept = DKD()(s.T[None, :, 1:, None], t.T[None, :, 1:, None], torch.tensor([[[3], [0]]]))
    assert total(dense).item() == pytest.approx(total(dense_kept).item(), rel=1e-12)


def test_class_labels_outside_the_classes_are_errors_not_ignored():
    s = torch.randn(2, 4)
    for loss in (DKD(), AEKT(head='none')):
        with pytest.raises(ValueError, match=r'labels must lie in \[0, 4\); found \[255\]'):
            loss(s, s, torch.tensor([0, 255]))


# ---- DKD: the target-class term in float32 ------------------------------------------------------

def hard_logits(case, seed, batch=64, classes=1000):
    """ImageNet-sized logits: random spread, a small target probability, or confident ones."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (batch,), generator=g)
    rows = torch.arange(batch)
    s, t = torch.randn(batch, classes, generator=g), torch.randn(batch, classes, generator=g)
    if case == 'confident':         # teacher sure of the target, student less so
        s, t = 8 * s, 10 * t
        s[rows, y] += 20
        t[rows, y] += 30
        return s, t, y
    s, t = 3 * s, 4 * t
    if case == 'target small':      # p_target ~ 1e-6 .. 1e-9 on both sides
        s[rows, y] = -2 + torch.randn(batch, generator=g)
        t[rows, y] = -4 + torch.randn(batch, generator=g)
    return s, t, y


def tckd_as_before(s, t, y, tau):
    """The replaced form: log(1 - p_target) as a difference of two log-sum-exps."""
    def log_b(z):
        z = z / tau
        nt = ~F.one_hot(y, z.shape[1]).bool()
        log_all = torch.logsumexp(z, 1)
        rest = torch.logsumexp(z[nt].view(len(y), -1), 1)
        return torch.stack([z[~nt] - log_all, rest - log_all], 1)

    log_b_s, log_b_t = log_b(s), log_b(t)
    return (log_b_t.exp() * (log_b_t - log_b_s)).sum(1).mean() * tau ** 2


@pytest.mark.parametrize('tau', [1.0, 4.0])
@pytest.mark.parametrize('case', ['random', 'target small', 'confident'])
def test_tckd_float32_within_1e_6_of_float64(case, tau):
    before = []
    for seed in range(3):
        s, t, y = hard_logits(case, seed)
        loss = DKD(alpha=1.0, beta=1.0, tau=tau)
        ref = loss(s.double(), t.double(), y)['tckd'].item()
        got = loss(s, t, y)['tckd'].item()
        assert abs(got - ref) / ref < 1e-6, (case, tau, seed, got, ref)
        before.append(abs(tckd_as_before(s, t, y, tau).item() - ref) / ref)
    if case != 'confident':  # the control: these cases did lose precision (measured 1e-4..4e-2)
        assert max(before) > 1e-5


# ---- DKD / AEKT: the authors' per-epoch warm-up ------------------------------------------------

@pytest.fixture
def hub():
    """A fresh current MessageHub, as MMEngine's Runner makes one."""
    return MessageHub.get_instance(f'dkd-warmup-{os.urandom(4).hex()}')


@pytest.mark.parametrize('cls,kwargs', [(DKD, {}), (AEKT, dict(head='none'))])
def test_epoch_warmup_is_min_epoch_over_warmup_counted_from_one(hub, cls, kwargs):
    torch.manual_seed(0)
    s, t, y = torch.randn(4, 6), torch.randn(4, 6), torch.tensor([0, 5, 2, 1])
    full = sum(cls(**kwargs)(s, t, y).values()).item()
    loss = cls(warmup_epochs=3, **kwargs)
    hub.update_info('max_epochs', 10)
    for epoch, factor in [(0, 1 / 3), (1, 2 / 3), (2, 1.0), (7, 1.0)]:  # MMEngine's 0-based
        hub.update_info('epoch', epoch)
        for _ in range(2):  # stepped per epoch, not per iteration
            assert sum(loss(s, t, y).values()).item() == pytest.approx(factor * full, rel=1e-6)
    # mdistiller's ImageNet configs (WARMUP: 1): full weight from the first iteration
    hub.update_info('epoch', 0)
    assert sum(cls(warmup_epochs=1, **kwargs)(s, t, y).values()).item() == pytest.approx(full)
    assert not [k for k in loss.state_dict() if 'warmup' in k]  # the epoch is the Runner's


def test_epoch_warmup_errors(hub):
    s, y = torch.randn(2, 3), torch.tensor([0, 1])
    with pytest.raises(RuntimeError, match="MessageHub.*Train through the Runner, or use "
                                           'warmup_iters'):
        DKD(warmup_epochs=2)(s, s, y)
    hub.update_info_dict(dict(epoch=0, max_epochs=1))  # an iteration-based loop
    with pytest.raises(ValueError, match=r'warmup_epochs=2 never reaches full weight in a run '
                                         r'of max_epochs=1'):
        DKD(warmup_epochs=2)(s, s, y)
    assert DKD(warmup_epochs=1)(s, s, y)['tckd'].item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match='warmup_epochs must be >= 0; got -1'):
        DKD(warmup_epochs=-1)
    for cls, kwargs in ((DKD, {}), (AEKT, dict(head='none'))):
        with pytest.raises(ValueError, match=f'{cls.__name__}: set warmup_epochs .* or '
                                             'warmup_iters .*, not both'):
            cls(warmup_epochs=1, warmup_iters=10, **kwargs)


class StopAfterEpochs(Hook):
    priority = 'LOWEST'

    def __init__(self, epochs):
        self.epochs = epochs

    def after_train_epoch(self, runner):
        if runner.epoch + 1 >= self.epochs:
            runner.train_loop.stop_training = True


def dkd_runner(work_dir, teacher_ckpt, stop_after=None, resume=False):
    from mmengine.runner import Runner
    model = dict(
        type='mmdiffkd.Distiller', student=toy_model(8),
        teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
        distill_losses=dict(logits=dict(loss=dict(type='DKD', warmup_epochs=4), student='fc',
                                        teacher='fc')),
        dry_run=dict(input_size=(16, 16)))
    return Runner(
        model=model, work_dir=str(work_dir), train_dataloader=toy_loader(n=4, batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=4),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[StopAfterEpochs(stop_after)] if stop_after else None,
        resume=resume, default_scope='mmdiffkd', log_level='WARNING')


def test_epoch_warmup_per_epoch_through_the_runner_and_a_resume(tmp_path, monkeypatch):
    teacher = toy_teacher_checkpoint(tmp_path / 'teacher.pth')
    factors = []
    original = EpochWarmup._epoch_warmup_factor

    def spy(self):
        factors.append(original(self))
        return factors[-1]

    monkeypatch.setattr(EpochWarmup, '_epoch_warmup_factor', spy)
    dkd_runner(tmp_path / 'full', teacher).train()  # 4 epochs x 2 iterations
    assert factors == pytest.approx([0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0])

    factors.clear()
    dkd_runner(tmp_path / 'split', teacher, stop_after=2).train()
    assert factors == pytest.approx([0.25, 0.25, 0.5, 0.5])
    assert (tmp_path / 'split' / 'epoch_2.pth').exists()
    factors.clear()
    dkd_runner(tmp_path / 'split', teacher, resume=True).train()  # epochs 3 and 4
    assert factors == pytest.approx([0.75, 0.75, 1.0, 1.0])


# ---- FitNets: the references' regressor and MMRazor's L2Loss -----------------------------------

def test_fitnets_reference_regressor_is_conv_bn_relu():
    torch.manual_seed(0)
    s, t = torch.randn(4, 3, 5, 5), torch.relu(torch.randn(4, 6, 5, 5))
    loss = FitNets(student_channels=3, teacher_channels=6, norm=True, relu=True)
    with torch.no_grad():
        loss.norm.weight.uniform_(0.5, 2.0)
        loss.norm.bias.uniform_(-0.5, 0.5)
    # mdistiller's ConvReg (conv with bias) and MMRazor's ConvModuleConnector (no bias: BN
    # follows) for equal grids, with the loss's weights copied in
    conv_bias = nn.Conv2d(3, 6, 1)
    conv_plain = nn.Conv2d(3, 6, 1, bias=False)
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        for conv in (conv_bias, conv_plain):
            conv.weight.copy_(loss.regressor.weight[:, :, None, None])
        conv_bias.bias.copy_(loss.regressor.bias)
        bn.weight.copy_(loss.norm.weight)
        bn.bias.copy_(loss.norm.bias)
    for conv in (conv_bias, conv_plain):
        reference = nn.Sequential(conv, bn, nn.ReLU()).train()
        expected = F.mse_loss(reference(s), t)
        assert loss(s, t).item() == pytest.approx(expected.item(), rel=1e-5)
    # by hand: per-channel batch statistics (biased variance, eps 1e-5), then ReLU
    w, c = loss.regressor.weight, loss.regressor.bias
    h = torch.einsum('oc,bchw->bohw', w, s) + c[:, None, None]
    mean = h.mean((0, 2, 3), keepdim=True)
    var = h.var((0, 2, 3), unbiased=False, keepdim=True)
    hint = torch.relu((h - mean) / torch.sqrt(var + 1e-5) * loss.norm.weight[:, None, None]
                      + loss.norm.bias[:, None, None])
    assert loss(s, t).item() == pytest.approx(((hint - t) ** 2).mean().item(), rel=1e-5)
    assert (loss.norm.running_mean != 0).any()  # trained like the references' BatchNorm


def test_fitnets_normalized_l2_is_mmrazor_l2loss():
    torch.manual_seed(0)
    s, t = torch.randn(3, 2, 4, 4), torch.randn(3, 5, 4, 4)
    loss = FitNets(student_channels=2, teacher_channels=5, distance='normalized_l2')
    hint = F.conv2d(s, loss.regressor.weight[:, :, None, None], loss.regressor.bias)
    expected = 0.0
    for i in range(3):  # each sample flattened, L2-normalised, squared distance; / batch
        a, b = hint[i].flatten(), t[i].flatten()
        expected += ((a / a.norm() - b / b.norm()) ** 2).sum().item()
    assert loss(s, t).item() == pytest.approx(expected / 3, rel=1e-6)
    # = 2 - 2 cos per sample: invariant to each sample's scale
    assert loss(s, t * torch.tensor([2.0, 0.1, 7.0])[:, None, None, None]).item() == \
        pytest.approx(expected / 3, rel=1e-5)
    with pytest.raises(ValueError, match="distance='l2' is not one of"):
        FitNets(2, 5, distance='l2')


# ---- VkD ----------------------------------------------------------------------------------------

def test_vkd_refuses_an_affine_that_channel_standardisation_cancels():
    with pytest.raises(ValueError, match="affine=True does nothing with normalize='channel'"):
        VkD(2, 3, normalize='channel', affine=True)
    with pytest.raises(ValueError, match="affine=True does nothing"):
        MODELS.build(dict(type='VkD', student_channels=2, teacher_channels=3,
                          normalize='channel', affine=True))
    assert VkD(2, 3, normalize='sample', affine=True).scale is not None  # acts there
    # why: per-channel standardisation of a * x + b is that of x, up to eps
    x = torch.randn(8, 3, 4, 4)
    a, b = torch.tensor([3.0, 0.5, 2.0]), torch.tensor([1.0, -2.0, 0.3])
    std = F.batch_norm(x, None, None, training=True, eps=1e-5)
    std_affine = F.batch_norm(x * a[:, None, None] + b[:, None, None], None, None,
                              training=True, eps=1e-5)
    assert torch.allclose(std, std_affine, atol=1e-4)


def test_vkd_head_kl_is_a_kd_tau_1_declaration(tmp_path):
    """The authors' classification objective: smooth-L1 (VkD) + KL(T=1, batchmean) on the head."""
    teacher = toy_teacher_checkpoint(tmp_path / 'teacher.pth', seed=0)
    model = MODELS.build(dict(
        type='Distiller', student=toy_model(8),
        teacher=dict(config=toy_model(16), checkpoint=teacher),
        distill_losses=dict(
            feat=dict(loss=dict(type='VkD'), student='stage2', teacher='stage2', weight=1.0),
            head_kl=dict(loss=dict(type='KD', tau=1.0), student='fc', teacher='fc',
                         weight=1.0)),
        dry_run=dict(input_size=(16, 16))))
    model.train()
    model.student.stage1[3].p = 0.0  # no dropout: the student's logits below are the same
    data = model.data_preprocessor(toy_batch(n=4), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_feat', 'loss_head_kl'}
    with torch.no_grad():
        z_s = model.student(data['inputs'], mode='tensor')
        z_t = model.teacher(data['inputs'], mode='tensor')
    kl = 0.0
    for row_s, row_t in zip(z_s.tolist(), z_t.tolist()):  # KL(p_t || p_s), T = 1, per sample
        p_s = [math.exp(v) / sum(math.exp(u) for u in row_s) for v in row_s]
        p_t = [math.exp(v) / sum(math.exp(u) for u in row_t) for v in row_t]
        kl += sum(a * math.log(a / b) for a, b in zip(p_t, p_s))
    assert losses['loss_head_kl'].item() == pytest.approx(kl / 4, rel=1e-5)


# ---- the weight factors of docs/methods.md ------------------------------------------------------

def test_mmrazor_kldivergence_factors():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4)
    tau = 2.0

    def mmrazor_kl(s, t, reduction):  # KLDivergence: tau^2 * kl_div(log_softmax, softmax, dim 1)
        return tau ** 2 * F.kl_div(F.log_softmax(s / tau, 1), F.softmax(t / tau, 1),
                                   reduction=reduction)

    ours = KD(tau=tau)
    assert mmrazor_kl(s, t, 'batchmean').item() == pytest.approx(12 * ours(s, t).item())  # H*W
    assert mmrazor_kl(s, t, 'mean').item() == pytest.approx(ours(s, t).item() / 5)        # / K
    v_s, v_t = s[:, :, 0, 0], t[:, :, 0, 0]
    assert mmrazor_kl(v_s, v_t, 'batchmean').item() == pytest.approx(ours(v_s, v_t).item())
    assert mmrazor_kl(v_s, v_t, 'mean').item() == pytest.approx(ours(v_s, v_t).item() / 5)


def test_mmrazor_dkdloss_is_a_batch_sum():
    """MMRazor's DKDLoss passes size_average=False to kl_div, which overrides its reduction."""
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 5), torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    ours = total(DKD(alpha=1.0, beta=0.5, tau=1.0)(s, t, y)).item()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch warns that size_average is deprecated
        legacy = F.kl_div(F.log_softmax(s, 1), F.softmax(t, 1), size_average=False,
                          reduction='mean')
    assert legacy.item() == pytest.approx(F.kl_div(F.log_softmax(s, 1), F.softmax(t, 1),
                                                   reduction='sum').item())
    hand = sum(dkd_by_hand(s[i].tolist(), t[i].tolist(), int(y[i]), 1.0, 0.5, 1.0)
               for i in range(6))
    assert hand == pytest.approx(6 * ours, rel=1e-5)  # MMRazor = N x ours
