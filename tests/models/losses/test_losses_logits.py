"""Logit losses (KD, DIST, DKD, AEKT): values against hand computations on tiny tensors."""
import math

import pytest
import torch
from mmengine.structures import BaseDataElement, PixelData

from mmdiffkd.models.losses import AEKT, DIST, DKD, KD
from mmdiffkd.registry import MODELS

S = [[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]]
T = [[2.0, 1.0, 0.0], [0.5, 0.5, 2.5]]
Y = [1, 2]


def softmax(row, tau=1.0):
    e = [math.exp(v / tau) for v in row]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return num / den


def dkd_parts(s_row, t_row, y, tau):
    """(TCKD, NCKD, p_t target prob, p_s target prob) for one sample, by hand."""
    ps, pt = softmax(s_row, tau), softmax(t_row, tau)
    tckd = kl([pt[y], 1 - pt[y]], [ps[y], 1 - ps[y]])
    qs = softmax([v for k, v in enumerate(s_row) if k != y], tau)
    qt = softmax([v for k, v in enumerate(t_row) if k != y], tau)
    return tckd, kl(qt, qs), pt[y], ps[y]


def total(out):
    return sum(out.values()) if isinstance(out, dict) else out


# ---- KD ---------------------------------------------------------------------------------------

def test_kd_value_by_hand():
    tau = 2.0
    expected = sum(kl(softmax(t, tau), softmax(s, tau)) for s, t in zip(S, T)) / 2 * tau ** 2
    got = KD(tau=tau)(torch.tensor(S), torch.tensor(T))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kd_dense_logits_are_per_pixel_samples():
    # (B=1, K=3, H=1, W=2): the two pixels are the two rows of S / T.
    s = torch.tensor(S).t().reshape(1, 3, 1, 2)
    t = torch.tensor(T).t().reshape(1, 3, 1, 2)
    expected = sum(kl(softmax(tr, 4.0), softmax(sr, 4.0)) for sr, tr in zip(S, T)) / 2 * 16
    assert KD()(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_kd_zero_when_equal_and_bad_tau():
    x = torch.tensor(S)
    assert KD()(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match='tau'):
        KD(tau=0)


# ---- DIST -------------------------------------------------------------------------------------

def test_dist_value_by_hand():
    s = S + [[0.0, 1.0, -1.0]]
    t = T + [[1.0, 0.0, 0.3]]
    tau, beta, gamma = 2.0, 1.5, 0.5
    ps, pt = [softmax(r, tau) for r in s], [softmax(r, tau) for r in t]
    inter = sum(1 - pearson(a, b) for a, b in zip(ps, pt)) / 3 * tau ** 2
    cols = lambda p, j: [row[j] for row in p]  # noqa: E731
    intra = sum(1 - pearson(cols(ps, j), cols(pt, j)) for j in range(3)) / 3 * tau ** 2
    out = DIST(beta=beta, gamma=gamma, tau=tau)(torch.tensor(s), torch.tensor(t))
    assert set(out) == {'inter', 'intra'}
    assert out['inter'].item() == pytest.approx(beta * inter, rel=1e-4)
    assert out['intra'].item() == pytest.approx(gamma * intra, rel=1e-4)


def test_dist_invariant_to_teacher_scale_of_relations():
    # Pearson distance ignores shift and scale: a perfectly correlated student costs nothing.
    p = torch.tensor(S)
    out = DIST(tau=1.0)(p, p.clone())
    assert total(out).item() == pytest.approx(0.0, abs=1e-5)


def test_dist_needs_two_samples_for_intra():
    with pytest.raises(ValueError, match='at least 2 samples'):
        DIST()(torch.randn(1, 5), torch.randn(1, 5))
    assert torch.isfinite(total(DIST(gamma=0)(torch.randn(1, 5), torch.randn(1, 5))))


# ---- DKD --------------------------------------------------------------------------------------

def test_dkd_value_by_hand():
    alpha, beta, tau = 0.7, 3.0, 2.0
    parts = [dkd_parts(s, t, y, tau) for s, t, y in zip(S, T, Y)]
    tckd = sum(p[0] for p in parts) / 2 * tau ** 2
    nckd = sum(p[1] for p in parts) / 2 * tau ** 2
    out = DKD(alpha=alpha, beta=beta, tau=tau)(torch.tensor(S), torch.tensor(T), torch.tensor(Y))
    assert out['tckd'].item() == pytest.approx(alpha * tckd, rel=1e-5)
    assert out['nckd'].item() == pytest.approx(beta * nckd, rel=1e-5)


def test_dkd_reformulates_kd():
    # DKD paper: KD = TCKD + (1 - p_t_target) * NCKD, per sample.
    s, t, y, tau = torch.tensor([S[0]]), torch.tensor([T[0]]), torch.tensor([Y[0]]), 3.0
    out = DKD(alpha=1, beta=1, tau=tau)(s, t, y)
    p_target = torch.softmax(t / tau, 1)[0, Y[0]]
    recombined = out['tckd'] + (1 - p_target) * out['nckd']
    assert recombined.item() == pytest.approx(KD(tau=tau)(s, t).item(), rel=1e-5)


@pytest.mark.parametrize('cls,kwargs', [(DKD, {}), (AEKT, dict(head='none'))])
def test_linear_warmup_counts_training_steps_and_survives_a_resume(cls, kwargs):
    s, t, y = torch.tensor(S), torch.tensor(T), torch.tensor(Y)
    full = total(cls(**kwargs)(s, t, y)).item()
    loss = cls(warmup_iters=4, **kwargs)
    got = [total(loss(s, t, y)).item() for _ in range(5)]
    assert got == pytest.approx([full / 4, full / 2, full * 3 / 4, full, full], rel=1e-5)
    loss.eval()
    assert total(loss(s, t, y)).item() == pytest.approx(full, rel=1e-5)  # eval does not count
    resumed = cls(warmup_iters=8, **kwargs)
    resumed.load_state_dict(loss.state_dict())  # step 5 of 8
    assert total(resumed(s, t, y)).item() == pytest.approx(full * 6 / 8, rel=1e-5)
    assert 'warmup_step' not in cls(**kwargs).state_dict()
    with pytest.raises(ValueError, match='warmup_iters must be >= 0; got -1'):
        cls(warmup_iters=-1, **kwargs)


def test_dkd_reads_mm_data_samples():
    samples = [BaseDataElement(gt_label=torch.tensor([y])) for y in Y]
    a = DKD()(torch.tensor(S), torch.tensor(T), samples)
    b = DKD()(torch.tensor(S), torch.tensor(T), torch.tensor(Y))
    assert total(a).item() == pytest.approx(total(b).item(), rel=1e-6)


def test_dkd_dense_with_ignored_pixels_and_seg_samples():
    s = torch.tensor(S).t().reshape(1, 3, 1, 2)
    t = torch.tensor(T).t().reshape(1, 3, 1, 2)
    labels = torch.tensor([[[Y[0], 255]]])  # second pixel ignored
    out = DKD(tau=2.0)(s, t, labels)
    tckd, nckd, _, _ = dkd_parts(S[0], T[0], Y[0], 2.0)
    assert out['tckd'].item() == pytest.approx(tckd * 4, rel=1e-5)
    assert out['nckd'].item() == pytest.approx(8 * nckd * 4, rel=1e-5)
    seg = [BaseDataElement(gt_sem_seg=PixelData(data=labels))]
    assert total(DKD(tau=2.0)(s, t, seg)).item() == pytest.approx(total(out).item(), rel=1e-6)


def test_dkd_all_pixels_ignored_gives_zero_with_a_graph():
    s = torch.randn(1, 3, 2, 2, requires_grad=True)
    out = DKD()(s, torch.randn(1, 3, 2, 2), torch.full((1, 2, 2), 255))
    total(out).backward()
    assert total(out).item() == 0 and torch.all(s.grad == 0)


def test_dkd_label_errors():
    s, t = torch.tensor(S), torch.tensor(T)
    with pytest.raises(ValueError, match='needs ground-truth labels'):
        DKD()(s, t)
    with pytest.raises(ValueError, match=r'labels of shape \(3,\)'):
        DKD()(s, t, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r'\[0, 3\)'):
        DKD()(s, t, torch.tensor([0, 7]))
    multi = [BaseDataElement(gt_label=torch.tensor([0, 2])), BaseDataElement(gt_label=1)]
    with pytest.raises(ValueError, match=r'one class index per sample.*\[0, 2\]'):
        DKD()(s, t, multi)
    with pytest.raises(TypeError, match='cannot read labels from a dict'):
        DKD()(s, t, [dict(label=0), dict(label=1)])


# ---- AEKT -------------------------------------------------------------------------------------

def test_aekt_value_by_hand_without_head():
    alpha, beta, tau, cap = 1.0, 2.0, 2.0, 1.5
    out = AEKT(head='none', alpha=alpha, beta=beta, tau=tau, max_ratio=cap)(
        torch.tensor(S), torch.tensor(T), torch.tensor(Y))
    explicit = implicit = 0.0
    for s, t, y in zip(S, T, Y):
        tckd, nckd, pt, ps = dkd_parts(s, t, y, tau)
        explicit += min(pt / ps, cap) * tckd
        implicit += nckd
    assert out['explicit'].item() == pytest.approx(alpha * explicit / 2 * tau ** 2, rel=1e-5)
    assert out['implicit'].item() == pytest.approx(beta * implicit / 2 * tau ** 2, rel=1e-5)


def test_aekt_serial_head_starts_as_identity_and_non_adaptive_is_dkd():
    s, t, y = torch.tensor(S), torch.tensor(T), torch.tensor(Y)
    aekt = AEKT(student_channels=3, teacher_channels=3, adaptive=False)
    dkd = DKD(alpha=1.0, beta=8.0, tau=4.0)(s, t, y)
    out = aekt(s, t, y)
    assert out['explicit'].item() == pytest.approx(dkd['tckd'].item(), rel=1e-5)
    assert out['implicit'].item() == pytest.approx(dkd['nckd'].item(), rel=1e-5)


def test_aekt_head_learns_and_stays_out_of_the_student():
    aekt = AEKT(student_channels=4, teacher_channels=3, head='parallel')
    feat = torch.randn(2, 4, requires_grad=True)
    total(aekt(feat, torch.tensor(T), torch.tensor(Y))).backward()
    assert aekt.head.weight.grad is not None and aekt.head.weight.grad.abs().sum() > 0
    assert feat.grad.abs().sum() > 0
    assert set(aekt.state_dict()) == {'head.weight', 'head.bias'}


def test_aekt_rejects_bad_configs_and_shapes():
    with pytest.raises(ValueError, match='student_channels=4 must equal teacher_channels=3'):
        AEKT(student_channels=4, teacher_channels=3)
    with pytest.raises(ValueError, match="head='linear'"):
        AEKT(student_channels=3, teacher_channels=3, head='linear')
    with pytest.raises(ValueError,
                       match=r'student_channels=3 was declared.*\(2, 5\) has 5 channels'):
        AEKT(student_channels=3, teacher_channels=3)(torch.randn(2, 5), torch.randn(2, 3),
                                                      torch.tensor(Y))
    with pytest.raises(ValueError, match=r'\(2, 3\) and teacher logits \(2, 4\)'):
        AEKT(head='none')(torch.randn(2, 3), torch.randn(2, 4), torch.tensor(Y))


# ---- common: registry, gradients, shape errors -----------------------------------------------

LOGIT_LOSSES = [
    (dict(type='KD'), False),
    (dict(type='DIST'), False),
    (dict(type='DKD'), True),
    (dict(type='AEKT', student_channels=3, teacher_channels=3), True),
]
BOTH_SHAPES = r'\(2, 3\).*\(2, 4\)'
# AEKT knows its declared widths, so it names the declaration and the offending shape.
SHAPE_ERROR = dict(KD=BOTH_SHAPES, DIST=BOTH_SHAPES, DKD=BOTH_SHAPES,
                   AEKT=r'teacher_channels=3 was declared.*\(2, 4\)')


@pytest.mark.parametrize('cfg,labels', LOGIT_LOSSES, ids=lambda v: getattr(v, 'get', str)('type'))
def test_gradient_reaches_student_only(cfg, labels):
    loss = MODELS.build(cfg)
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(T, requires_grad=True)
    out = loss(s, t, torch.tensor(Y) if labels else None)
    total(out).backward()
    assert t.grad is None
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


@pytest.mark.parametrize('cfg,labels', LOGIT_LOSSES, ids=lambda v: getattr(v, 'get', str)('type'))
def test_mismatched_logits_are_rejected(cfg, labels):
    loss = MODELS.build(cfg)
    with pytest.raises(ValueError, match=SHAPE_ERROR[cfg['type']]):
        loss(torch.randn(2, 3), torch.randn(2, 4), torch.tensor(Y) if labels else None)
