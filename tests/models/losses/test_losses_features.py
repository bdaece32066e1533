"""Feature losses (MSE, FitNets, CWD, PKD, VkD, RTK): values against hand computations."""
import io
import math

import pytest
import torch
import torch.nn.functional as F

from mmdiffkd.models.distillers.declaration import Entry, Record
from mmdiffkd.models.losses import CWD, MSE, PKD, RTK, FitNets, VkD
from mmdiffkd.registry import MODELS


def softmax(row, tau=1.0):
    e = [math.exp(v / tau) for v in row]
    return [v / sum(e) for v in e]


def layer_norm(v, eps=1e-5):
    m = sum(v) / len(v)
    var = sum((x - m) ** 2 for x in v) / len(v)
    return [(x - m) / math.sqrt(var + eps) for x in v]


def matvec(w, v, b=None):
    out = [sum(wi * vi for wi, vi in zip(row, v)) for row in w]
    return [o + bi for o, bi in zip(out, b)] if b is not None else out


def smooth_l1(a, b, beta=1.0):
    d = [abs(x - y) for x, y in zip(a, b)]
    return sum(0.5 * x * x / beta if x < beta else x - 0.5 * beta for x in d) / len(d)


def pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return num / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def total(out):
    return sum(out.values()) if isinstance(out, dict) else out


# ---- MSE, FitNets -----------------------------------------------------------------------------

def test_mse_value_and_shape_error():
    s, t = [1.0, -2.0, 0.5, 3.0], [0.0, -1.0, 1.5, 1.0]
    expected = sum((a - b) ** 2 for a, b in zip(s, t)) / 4
    got = MSE()(torch.tensor(s).reshape(1, 1, 2, 2), torch.tensor(t).reshape(1, 1, 2, 2))
    assert got.item() == pytest.approx(expected)
    with pytest.raises(ValueError, match=r'student shape \(1, 4\) and teacher shape \(1, 3\)'):
        MSE()(torch.randn(1, 4), torch.randn(1, 3))


def test_fitnets_value_by_hand():
    loss = FitNets(student_channels=2, teacher_channels=3)
    w = [[1.0, 0.5], [-1.0, 2.0], [0.0, 1.0]]
    b = [0.1, -0.2, 0.3]
    with torch.no_grad():
        loss.regressor.weight.copy_(torch.tensor(w))
        loss.regressor.bias.copy_(torch.tensor(b))
    s = [[1.0, 2.0], [0.5, -1.0]]          # two positions (1x2 map), 2 channels each
    t = [[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]  # the teacher at those positions, 3 channels
    sq = [(h - y) ** 2 for pos in range(2) for h, y in zip(matvec(w, s[pos], b), t[pos])]
    s_map = torch.tensor(s).t().reshape(1, 2, 1, 2)
    t_map = torch.tensor(t).t().reshape(1, 3, 1, 2)
    assert loss(s_map, t_map).item() == pytest.approx(sum(sq) / 6, rel=1e-6)
    # The same regressor on pooled vectors (B, C) is a linear layer.
    vec = loss(torch.tensor(s), torch.tensor(t))
    assert vec.item() == pytest.approx(sum(sq) / 6, rel=1e-6)


def test_fitnets_norm_standardizes_the_hint_in_training():
    loss = FitNets(student_channels=2, teacher_channels=3, norm=True)
    # A teacher that is already standardised per channel is matched exactly by a BN'd hint
    # when the regressor output is a per-channel affine copy of it.
    t = torch.randn(4, 3, 2, 2)
    t = (t - t.mean((0, 2, 3), keepdim=True)) / t.var((0, 2, 3), unbiased=False,
                                                      keepdim=True).add(1e-5).sqrt()
    with torch.no_grad():
        loss.regressor.weight.zero_()
        loss.regressor.weight[:2, :2] = torch.eye(2) * 3
        loss.regressor.weight[2, 0] = -2
        loss.regressor.bias.fill_(5)
    s = torch.stack([t[:, 0], t[:, 1]], 1)  # hint = (3 t0 + 5, 3 t1 + 5, -2 t0 + 5)
    target = torch.stack([t[:, 0], t[:, 1], -t[:, 0]], 1)
    assert loss(s, target).item() == pytest.approx(0.0, abs=1e-6)
    assert loss.norm.running_mean.abs().sum() > 0  # BN statistics were updated


def test_fitnets_needs_widths_and_matching_grid():
    with pytest.raises(ValueError, match='needs student_channels and teacher_channels'):
        FitNets()
    with pytest.raises(ValueError, match=r'\(1, 3, 2, 2\) does not match teacher \(1, 3, 4, 4\)'):
        FitNets(2, 3)(torch.randn(1, 2, 2, 2), torch.randn(1, 3, 4, 4))


# ---- CWD --------------------------------------------------------------------------------------

def test_cwd_value_by_hand():
    s = [[1.0, 2.0, 0.0], [0.5, 0.5, -1.0]]  # 2 channels x 3 positions
    t = [[0.0, 3.0, 1.0], [1.0, -1.0, 0.0]]
    tau = 2.0
    kl = sum(sum(p * math.log(p / q) for p, q in zip(softmax(tc, tau), softmax(sc, tau)))
             for sc, tc in zip(s, t))
    got = CWD(tau=tau)(torch.tensor(s).reshape(1, 2, 1, 3), torch.tensor(t).reshape(1, 2, 1, 3))
    assert got.item() == pytest.approx(kl / 2 * tau ** 2, rel=1e-5)


def test_cwd_adapter_when_widths_differ():
    loss = CWD(student_channels=4, teacher_channels=2)
    assert loss.adapter is not None
    assert loss(torch.randn(2, 4, 3, 3), torch.randn(2, 2, 3, 3)).item() >= 0
    with pytest.raises(ValueError, match=r'student shape \(2, 3, 3, 3\)'):
        CWD()(torch.randn(2, 3, 3, 3), torch.randn(2, 2, 3, 3))


# ---- PKD --------------------------------------------------------------------------------------

def test_pkd_is_one_minus_pearson_per_channel():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 2, 2, generator=g)
    t = torch.randn(2, 3, 2, 2, generator=g) * 5 + 3  # magnitude must not matter
    rs = [pearson(s[:, c].flatten().tolist(), t[:, c].flatten().tolist()) for c in range(3)]
    expected = sum(1 - r for r in rs) / 3
    assert PKD()(s, t).item() == pytest.approx(expected, rel=1e-4)
    assert PKD()(t * 0.1 - 4, t).item() == pytest.approx(0.0, abs=1e-6)


def test_pkd_after_the_declarations_resize_and_rejects_width_mismatch():
    """PKD has no resize of its own: the declaration's ``resize`` reconciles grids."""
    def entry(resize):
        record = Record('distill_losses.fpn', 'student', 'neck')
        return Entry('fpn', None, record, record, 1.0, resize, False)

    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)
    # bilinear 4 -> 2 (align_corners=False) samples between pixel pairs: a 2x2 average.
    to_teacher = PKD()(*entry('student').match(s, t))
    assert to_teacher.item() == pytest.approx(PKD()(F.avg_pool2d(s, 2), t).item(), rel=1e-5)
    to_student = PKD()(*entry('teacher').match(F.avg_pool2d(s, 2), s * 2 + 1))
    assert to_student.item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match=r'student \(2, 3, 4, 4\) and teacher \(2, 3, 2, 2\).*'
                                         r'resize="student"'):
        PKD()(s, t)
    with pytest.raises(ValueError, match=r'student \(2, 4, 2, 2\) and teacher \(2, 3, 2, 2\)'):
        PKD()(torch.randn(2, 4, 2, 2), torch.randn(2, 3, 2, 2))


# ---- VkD --------------------------------------------------------------------------------------

@pytest.mark.parametrize('cs,ct,orth', [(3, 5, None), (5, 3, None), (4, 4, None),
                                         (3, 5, 'cayley'), (5, 3, 'matrix_exp')])
def test_vkd_projection_is_orthogonal_and_stays_so(cs, ct, orth):
    loss = VkD(student_channels=cs, teacher_channels=ct, orthogonal_map=orth)
    opt = torch.optim.SGD(loss.parameters(), lr=0.5)
    for _ in range(2):
        opt.zero_grad()
        loss(torch.randn(6, cs), torch.randn(6, ct)).backward()
        opt.step()
    w = loss.projection.weight  # (ct, cs)
    gram = w.t() @ w if cs <= ct else w @ w.t()
    assert torch.allclose(gram, torch.eye(min(cs, ct)), atol=1e-5)


def test_vkd_sample_norm_value_by_hand():
    loss = VkD(student_channels=2, teacher_channels=3, beta=1.0)
    w = loss.projection.weight.detach().tolist()
    s = [[1.0, -2.0], [0.3, 0.8]]
    t = [[4.0, 1.0, -2.0], [0.0, 0.5, 3.0]]
    proj = [v for row in s for v in matvec(w, row)]
    target = [v for row in t for v in layer_norm(row)]
    expected = smooth_l1(proj, target)
    assert loss(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(expected, rel=1e-5)


def test_vkd_channel_norm_value_by_hand_on_maps():
    loss = VkD(student_channels=2, teacher_channels=2, normalize='channel')
    w = loss.projection.weight.detach().tolist()
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(2, 2, 1, 2, generator=g), torch.randn(2, 2, 1, 2, generator=g) * 3

    def standardize(values):  # per channel over batch and positions, population variance
        m = sum(values) / len(values)
        var = sum((v - m) ** 2 for v in values) / len(values)
        return [(v - m) / math.sqrt(var + 1e-5) for v in values]

    # positions of the (B=2, H=1, W=2) grid, each a 2-vector
    pos = [(b, x) for b in range(2) for x in range(2)]
    proj = [matvec(w, s[b, :, 0, x].tolist()) for b, x in pos]
    ps = [standardize([p[c] for p in proj]) for c in range(2)]
    ts = [standardize([t[b, c, 0, x].item() for b, x in pos]) for c in range(2)]
    expected = smooth_l1([v for c in ps for v in c], [v for c in ts for v in c])
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_vkd_pools_student_tokens_against_a_pooled_teacher():
    loss = VkD(student_channels=4, teacher_channels=6)
    tokens, teacher = torch.randn(2, 5, 4), torch.randn(2, 6)
    assert loss(tokens, teacher).item() == pytest.approx(
        loss(tokens.mean(1), teacher).item(), rel=1e-6)


def test_vkd_state_dict_loads_weights_only():
    a = VkD(student_channels=3, teacher_channels=5, affine=True)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = VkD(student_channels=3, teacher_channels=5, affine=True)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(a.projection.weight, b.projection.weight)


def test_vkd_bad_input():
    with pytest.raises(ValueError, match=r"normalize='layer' is not one of"):
        VkD(2, 3, normalize='layer')
    with pytest.raises(ValueError, match=r"orthogonal_map='qr' is not one of"):
        VkD(2, 3, orthogonal_map='qr')
    with pytest.raises(ValueError, match=r'\(2, 3, 4, 4\) does not match teacher \(2, 3, 2, 2\)'):
        VkD(2, 3)(torch.randn(2, 2, 4, 4), torch.randn(2, 3, 2, 2))


# ---- RTK --------------------------------------------------------------------------------------

def rtk_by_hand(loss, s_tokens, t_tokens, keep):
    """RTK on one image in plain Python: global selection, pairwise target, normalised values."""
    wq, bq = loss.query.weight.tolist(), loss.query.bias.tolist()
    wk, bk = loss.key.weight.tolist(), loss.key.bias.tolist()
    wv, bv = loss.value.weight.tolist(), loss.value.bias.tolist()
    d = len(bq)
    q = [matvec(wq, layer_norm(x), bq) for x in s_tokens]
    k = [matvec(wk, layer_norm(x), bk) for x in t_tokens]
    e = [[sum(a * b for a, b in zip(qi, kj)) / math.sqrt(d) for kj in k] for qi in q]
    mass = [sum(softmax(row)[j] for row in e) / len(e) for j in range(len(k))]
    kept = sorted(range(len(k)), key=lambda j: -mass[j])[:keep]
    u = [layer_norm(matvec(wv, x, bv)) for x in s_tokens]
    v = [layer_norm(x) for x in t_tokens]
    loss_sum = 0.0
    for i, row in enumerate(e):
        a = softmax([row[j] for j in kept])
        loss_sum += sum(aj * sum((x - y) ** 2 for x, y in zip(u[i], v[j]))
                        for aj, j in zip(a, kept))
    return loss_sum / (len(s_tokens) * len(v[0])), set(kept)


def test_rtk_value_by_hand_with_representative_keys():
    torch.manual_seed(0)
    loss = RTK(student_channels=2, teacher_channels=3, embed_channels=2, key_ratio=0.5)
    s = torch.randn(1, 2, 1, 3)   # 3 student positions
    t = torch.randn(1, 3, 2, 2)   # 4 teacher positions (a different grid)
    s_tok = s[0].flatten(1).t().tolist()
    t_tok = t[0].flatten(1).t().tolist()
    expected, kept = rtk_by_hand(loss, s_tok, t_tok, keep=2)
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-4)
    attn = loss.attention(torch.tensor([s_tok]), torch.tensor([t_tok]))[0]
    assert {j for j in range(4) if attn[0, j] > 0} == kept  # same keys for every query
    assert torch.all((attn > 0).sum(-1) == 2)


def test_rtk_variants():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 3, 3), torch.randn(2, 6, 3, 3)
    full = RTK(4, 6, key_selection='none')
    all_keys = RTK(4, 6, key_ratio=1.0)
    all_keys.load_state_dict(full.state_dict())
    assert full(s, t).item() == pytest.approx(all_keys(s, t).item(), rel=1e-6)
    per_query = RTK(4, 6, key_selection='query', key_ratio=0.25)
    attn = per_query.attention(s.flatten(2).transpose(1, 2), t.flatten(2).transpose(1, 2))
    assert torch.all((attn > 0).sum(-1) == 3)  # ceil(0.25 * 9)
    agg = RTK(4, 6, target='aggregate', pool_size=2)
    assert torch.isfinite(agg(s, t))
    tokens = RTK(4, 6)(torch.randn(2, 5, 4), torch.randn(2, 7, 6))
    assert torch.isfinite(tokens)


def test_rtk_bad_input():
    with pytest.raises(ValueError, match='key_ratio must lie in'):
        RTK(2, 3, key_ratio=0)
    with pytest.raises(ValueError, match="key_selection='topk' is not one of"):
        RTK(2, 3, key_selection='topk')
    with pytest.raises(ValueError, match=r'student \(2, 2, 3, 3\) and teacher \(3, 3, 3, 3\)'):
        RTK(2, 3)(torch.randn(2, 2, 3, 3), torch.randn(3, 3, 3, 3))


# ---- common: registry, gradients, shape errors -----------------------------------------------

FEATURE_LOSSES = {
    'MSE': (dict(type='MSE'), (2, 3, 4, 4), (2, 3, 4, 4)),
    'FitNets': (dict(type='FitNets', student_channels=2, teacher_channels=3),
                (2, 2, 4, 4), (2, 3, 4, 4)),
    'FitNets-reference': (dict(type='FitNets', student_channels=2, teacher_channels=3,
                               norm=True, relu=True, distance='normalized_l2'),
                          (2, 2, 4, 4), (2, 3, 4, 4)),
    'CWD': (dict(type='CWD'), (2, 3, 4, 4), (2, 3, 4, 4)),
    'PKD': (dict(type='PKD'), (2, 3, 4, 4), (2, 3, 4, 4)),
    'VkD': (dict(type='VkD', student_channels=2, teacher_channels=3), (4, 2), (4, 3)),
    'VkD-dense': (dict(type='VkD', student_channels=2, teacher_channels=3, normalize='channel'),
                  (2, 2, 4, 4), (2, 3, 4, 4)),
    'VkD-affine': (dict(type='VkD', student_channels=2, teacher_channels=3, affine=True),
                   (2, 2, 4, 4), (2, 3, 4, 4)),
    'RTK': (dict(type='RTK', student_channels=2, teacher_channels=3), (2, 2, 4, 4),
            (2, 3, 4, 4)),
}
# A teacher whose shape cannot fit the student, for each loss, and the words its error must use.
BAD_TEACHER = {
    'MSE': ((2, 4, 4, 4), r'\(2, 3, 4, 4\).*\(2, 4, 4, 4\)'),
    'FitNets': ((2, 3, 2, 2), r'\(2, 3, 4, 4\) does not match teacher \(2, 3, 2, 2\)'),
    'FitNets-reference': ((2, 3, 2, 2),
                          r'\(2, 3, 4, 4\) does not match teacher \(2, 3, 2, 2\)'),
    'CWD': ((2, 3, 2, 2), r'\(2, 3, 4, 4\).*\(2, 3, 2, 2\)'),
    'PKD': ((2, 5, 4, 4), r'\(2, 3, 4, 4\).*\(2, 5, 4, 4\)'),
    'VkD': ((3, 3), r'\(4, 3\) does not match teacher \(3, 3\)'),
    'VkD-dense': ((2, 3, 2, 2), r'\(2, 3, 4, 4\) does not match teacher \(2, 3, 2, 2\)'),
    'VkD-affine': ((2, 3, 2, 2), r'\(2, 3, 4, 4\) does not match teacher \(2, 3, 2, 2\)'),
    'RTK': ((2, 5, 4, 4), r'teacher_channels=3 was declared.*\(2, 5, 4, 4\)'),
}


def test_every_loss_is_registered():
    import mmdiffkd.models.losses as losses
    names = {'KD', 'DIST', 'DKD', 'FitNets', 'CWD', 'PKD', 'VkD', 'RTK', 'AEKT', 'MSE'}
    assert names <= set(MODELS.module_dict)
    assert all(MODELS.get(n) is getattr(losses, n) for n in names)


def test_the_loss_contract_detaches_the_teacher_positional_or_keyword():
    """DistillLoss detaches the teacher before every forward: no loss does it again."""
    s = torch.randn(2, 3, requires_grad=True)
    t = torch.randn(2, 3, requires_grad=True)
    loss = MSE()
    (loss(s, t) + loss(student=s, teacher=t) + loss(s, teacher=t)).backward()
    assert t.grad is None
    torch.testing.assert_close(s.grad, 3 * 2 * (s - t).detach() / s.numel())


@pytest.mark.parametrize('name', sorted(FEATURE_LOSSES))
def test_gradient_reaches_student_only(name):
    cfg, s_shape, t_shape = FEATURE_LOSSES[name]
    torch.manual_seed(0)
    loss = MODELS.build(cfg)
    s = torch.randn(s_shape, requires_grad=True)
    t = torch.randn(t_shape, requires_grad=True)
    total(loss(s, t)).backward()
    assert t.grad is None
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


@pytest.mark.parametrize('name', sorted(FEATURE_LOSSES))
def test_mismatched_shapes_are_rejected(name):
    cfg, s_shape, _ = FEATURE_LOSSES[name]
    t_shape, words = BAD_TEACHER[name]
    with pytest.raises(ValueError, match=words):
        MODELS.build(cfg)(torch.randn(s_shape), torch.randn(t_shape))


LOGIT_CASES = {
    'KD': dict(type='KD'), 'DIST': dict(type='DIST'), 'DKD': dict(type='DKD'),
    'AEKT': dict(type='AEKT', student_channels=5, teacher_channels=5),
}


@pytest.mark.parametrize('name', sorted(FEATURE_LOSSES) + sorted(LOGIT_CASES))
def test_half_precision_inputs_are_computed_in_float32(name):
    # Under AMP the recorded features arrive as float16 / bfloat16; the losses upcast them.
    torch.manual_seed(0)
    if name in LOGIT_CASES:
        loss, s_shape, t_shape = MODELS.build(LOGIT_CASES[name]), (6, 5), (6, 5)
    else:
        cfg, s_shape, t_shape = FEATURE_LOSSES[name]
        loss = MODELS.build(cfg)
    s, t = torch.randn(s_shape) * 4, torch.randn(t_shape) * 4
    s, t = s.bfloat16().float(), t.bfloat16().float()  # values exactly representable
    labels = torch.randint(0, 5, (6,))
    half = total(loss(s.bfloat16(), t.bfloat16(), labels))
    full = total(loss(s, t, labels))
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full.item(), rel=1e-5)
