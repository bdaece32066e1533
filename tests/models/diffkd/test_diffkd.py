"""DiffKD loss behaviour: layouts, batch 1, injected draws, options, autocast, errors."""
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub

from mmdiffkd.models.diffkd import BatchNorm2d, DiffKD
from mmdiffkd.registry import MODELS


def _draws(b, c, h, w, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return dict(noise=torch.randn(b, c, h, w, generator=gen),
                diffusion_noise=torch.randn(b, c, h, w, generator=gen),
                timesteps=torch.randint(0, 1000, (b,), generator=gen))


def _finite_grads(module):
    grads = [p.grad for p in module.parameters()]
    assert all(g is not None for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)


def test_registered_and_built_from_config():
    # scope-qualified: resolves whatever scope an earlier Runner left current
    loss = MODELS.build(dict(type='mmdiffkd.DiffKD', student_channels=8, teacher_channels=16))
    assert isinstance(loss, DiffKD)
    assert loss.distill_loss == 'mse' and loss.kernel_size == 3 and loss.inference_steps == 5


def test_feature_maps_with_autoencoder():
    torch.manual_seed(0)
    loss = DiffKD(8, 16, use_ae=True)
    assert loss.channels == 8  # ae_channels defaults to teacher_channels // 2
    s = torch.randn(2, 8, 5, 4, requires_grad=True)
    t = torch.randn(2, 16, 5, 4, requires_grad=True)
    out = loss(s, t)
    assert set(out) == {'distill', 'diffusion', 'ae'}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    sum(out.values()).backward()
    _finite_grads(loss)
    assert s.grad is not None and t.grad is None  # the teacher is a constant


def test_logits_kernel1_uses_kl_and_returns_logit_layout():
    torch.manual_seed(0)
    loss = DiffKD(10, 10, kernel_size=1)
    assert loss.distill_loss == 'kl'
    s = torch.randn(4, 10, requires_grad=True)
    out, extras = loss(s, torch.randn(4, 10), return_denoised=True)
    assert set(out) == {'distill', 'diffusion'}
    assert extras['denoised'].shape == (4, 10)
    assert extras['gamma'].shape == (4,) and ((extras['gamma'] > 0) & (extras['gamma'] < 1)).all()
    # the distillation part is KL(softmax(t) || softmax(denoised)) with batchmean, tau = 1
    t = extras['target'].flatten(1)
    kl = F.kl_div(F.log_softmax(extras['denoised'], 1), F.softmax(t, 1), reduction='batchmean')
    torch.testing.assert_close(out['distill'], kl)
    sum(out.values()).backward()
    _finite_grads(loss)


def test_tokens_equal_the_map_they_reshape_to():
    torch.manual_seed(0)
    loss = DiffKD(6, 12)
    s_map, t_map = torch.randn(2, 6, 3, 4), torch.randn(2, 12, 3, 4)
    s_tok, t_tok = s_map.flatten(2).transpose(1, 2), t_map.flatten(2).transpose(1, 2)
    draws = _draws(2, 12, 3, 4)
    ref = loss(s_map, t_map, **draws)
    # non-square N = 12 needs its size: given as a kwarg ...
    out, extras = loss(s_tok, t_tok, token_hw=(3, 4), return_denoised=True, **draws)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k])
    assert extras['denoised'].shape == (2, 12, 12)  # back to (B, N, C)
    # ... or taken from the other input when that one is a map
    out = loss(s_tok, t_map, **draws)
    torch.testing.assert_close(out['distill'], ref['distill'])


def test_square_tokens_need_no_size():
    loss = DiffKD(4, 8)
    out = loss(torch.randn(2, 9, 4), torch.randn(2, 9, 8))
    assert torch.isfinite(out['distill'])


@pytest.mark.parametrize('kwargs, student, teacher, match', [
    (dict(), (2, 17, 4), (2, 17, 8), r'17 tokens are not a square grid \(16 = 4\^2: drop the 1 '
     r'leading class / distillation token\(s\) first\)'),
    (dict(), (2, 12, 4), (2, 12, 8),
     r'12 tokens are not a square grid.*token_hw=\(H, W\).*drop_tokens'),
    (dict(token_hw=(2, 5)), (2, 12, 4), (2, 12, 8), r'the grid \(2, 5\) has 10 positions'),
    (dict(), (2, 4, 3, 3, 1), (2, 8, 3, 3), r'\(2, 4, 3, 3, 1\); expected'),
    (dict(), (2, 5, 3, 3), (2, 8, 3, 3), r'student_channels=4.*got student \(2, 5, 3, 3\)'),
    (dict(), (2, 4, 3, 3), (2, 8, 4, 3), r'same batch size and spatial size'),
    (dict(), (3, 4, 3, 3), (2, 8, 3, 3), r'same batch size and spatial size'),
])
def test_bad_shapes_are_named(kwargs, student, teacher, match):
    loss = DiffKD(4, 8)
    with pytest.raises(ValueError, match=match):
        loss(torch.randn(*student), torch.randn(*teacher), **kwargs)


@pytest.mark.parametrize('kwargs, match', [
    (dict(student_channels=None), 'student_channels must be a positive int; got None'),
    (dict(kernel_size=5), 'kernel_size must be 3 .* or 1 .*; got 5'),
    (dict(distill_loss='l1'), "distill_loss must be 'mse' or 'kl'; got 'l1'"),
    (dict(kernel_size=1, use_ae=True), 'use_ae=True needs kernel_size=3'),
    (dict(ae_channels=4), 'ae_channels=4 was given with use_ae=False'),
    (dict(token_hw=(3,)), r'token_hw must be a pair of positive ints'),
    (dict(num_train_timesteps=2000), 'exceeds the 1280 rows'),
    (dict(use_ae=True), r'working width \(ae_channels=4\) .* must be >= 8'),
])
def test_bad_arguments_are_named(kwargs, match):
    args = dict(student_channels=4, teacher_channels=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DiffKD(**args)


def test_bad_injected_draws_are_named():
    loss = DiffKD(4, 8)
    s, t = torch.randn(2, 4, 3, 3), torch.randn(2, 8, 3, 3)
    with pytest.raises(ValueError, match=r'noise has shape \(2, 8, 3\)'):
        loss(s, t, noise=torch.randn(2, 8, 3))
    with pytest.raises(ValueError, match=r'timesteps must lie in \[0, 1000\); got \[3, 1000\]'):
        loss(s, t, timesteps=torch.tensor([3, 1000]))
    with pytest.raises(ValueError, match=r'timesteps must be an integer tensor of shape \(2,\)'):
        loss(s, t, timesteps=torch.tensor([3.0, 4.0]))


def test_batch_one_logits_and_maps():
    """The reference crashes at B = 1 (BatchNorm of one value); we train and stay finite."""
    torch.manual_seed(0)
    logits = DiffKD(10, 10, kernel_size=1)
    stats = {k: v.clone() for k, v in logits.state_dict().items() if 'running' in k}
    s = torch.randn(1, 10, requires_grad=True)
    out, extras = logits(s, torch.randn(1, 10), return_denoised=True)
    assert extras['denoised'].shape == (1, 10)
    sum(out.values()).backward()
    _finite_grads(logits)
    assert torch.isfinite(s.grad).all()
    # single-value BatchNorms normalise over the layer and leave their running statistics
    after = logits.state_dict()
    assert all(torch.equal(after[k], v) for k, v in stats.items())

    maps = DiffKD(4, 8)
    out = maps(torch.randn(1, 4, 3, 3), torch.randn(1, 8, 3, 3))
    sum(out.values()).backward()
    _finite_grads(maps)


@pytest.mark.parametrize('shape', [(1, 3, 1, 1), (2, 3, 1, 1), (3, 3, 1, 1), (1, 3, 1, 3)])
def test_batchnorm_few_values_normalise_each_sample_over_the_layer(shape):
    """Fewer than MIN_BATCH_VALUES (4) values per channel: each sample normalised over its
    channels and positions, then the per-channel affine; running statistics untouched. Plain
    BatchNorm's output is +-1 at two values whatever the input; this one follows the input."""
    torch.manual_seed(0)
    ours = BatchNorm2d(3)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2)
        ours.bias.uniform_(-1, 1)
    stats = {k: v.clone() for k, v in ours.state_dict().items() if 'running' in k or 'num' in k}
    x = torch.randn(*shape, requires_grad=True)
    flat = x.flatten(1)
    normed = (flat - flat.mean(1, keepdim=True)) / (flat.var(1, unbiased=False, keepdim=True)
                                                    + ours.eps).sqrt()
    expected = normed.view(shape) * ours.weight.view(1, 3, 1, 1) + ours.bias.view(1, 3, 1, 1)
    out = ours(x)
    torch.testing.assert_close(out, expected)
    for k, v in stats.items():
        assert torch.equal(ours.state_dict()[k], v), k
    # scale invariant, and a bounded gradient
    torch.testing.assert_close(ours(10 * x), out, rtol=1e-4, atol=1e-4)  # eps aside
    (out * torch.randn(shape)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() < 100
    # eval mode: the running statistics, as nn.BatchNorm2d
    ref = nn.BatchNorm2d(3)
    ref.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours.eval()(x), ref.eval()(x))


@pytest.mark.parametrize('shape', [(4, 3, 1, 1), (2, 3, 1, 2), (1, 3, 2, 2), (2, 3, 4, 5)])
def test_batchnorm_is_plain_batchnorm_from_four_values(shape):
    torch.manual_seed(0)
    ours, ref = BatchNorm2d(3), nn.BatchNorm2d(3)
    ours.running_mean.uniform_(-1, 1)
    ours.running_var.uniform_(0.5, 2)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(*shape)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    for a, b in zip(ours.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_injected_draws_and_generator_make_it_reproducible():
    torch.manual_seed(0)
    loss = DiffKD(4, 8).eval()  # eval: BatchNorm statistics do not drift between the calls
    s, t = torch.randn(2, 4, 3, 3), torch.randn(2, 8, 3, 3)
    a = loss(s, t, generator=torch.Generator().manual_seed(3))
    b = loss(s, t, generator=torch.Generator().manual_seed(3))
    c = loss(s, t, generator=torch.Generator().manual_seed(4))
    for k in a:
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a['diffusion'], c['diffusion'])
    # the generator draws in the documented order: start noise, diffusion noise, timesteps
    gen = torch.Generator().manual_seed(3)
    draws = dict(noise=torch.randn(2, 8, 3, 3, generator=gen),
                 diffusion_noise=torch.randn(2, 8, 3, 3, generator=gen),
                 timesteps=torch.randint(0, 1000, (2,), generator=gen))
    d = loss(s, t, **draws)
    for k in a:
        assert torch.equal(a[k], d[k])


def test_part_weights_scale_their_part_only():
    torch.manual_seed(0)
    base = DiffKD(4, 16, use_ae=True).eval()
    weighted = DiffKD(4, 16, use_ae=True, distill_weight=2.0, diffusion_weight=0.5,
                      ae_weight=3.0).eval()
    weighted.load_state_dict(base.state_dict())
    s, t = torch.randn(2, 4, 3, 3), torch.randn(2, 16, 3, 3)
    a, b = base(s, t, **_draws(2, 8, 3, 3)), weighted(s, t, **_draws(2, 8, 3, 3))
    torch.testing.assert_close(b['distill'], 2.0 * a['distill'])
    torch.testing.assert_close(b['diffusion'], 0.5 * a['diffusion'])
    torch.testing.assert_close(b['ae'], 3.0 * a['ae'])


def test_distill_updates_diffusion_false_keeps_predictor_on_diffusion_loss():
    torch.manual_seed(0)
    ref = DiffKD(4, 8)
    cut = DiffKD(4, 8, distill_updates_diffusion=False)
    cut.load_state_dict(ref.state_dict())
    s0, t = torch.randn(2, 4, 3, 3), torch.randn(2, 8, 3, 3)
    grads = {}
    for name, module in (('ref', ref), ('cut', cut)):
        s = s0.clone().requires_grad_(True)
        out = module(s, t, **_draws(2, 8, 3, 3))
        sum(out.values()).backward()
        grads[name] = s.grad
    # the student still receives the full gradient through the sampling chain
    torch.testing.assert_close(grads['cut'], grads['ref'])
    # the predictor's gradient is exactly that of the diffusion loss
    only = DiffKD(4, 8)
    only.load_state_dict(ref.state_dict())
    only(s0, t, **_draws(2, 8, 3, 3))['diffusion'].backward()
    for (name, p_cut), p_only, p_ref in zip(cut.noise_predictor.named_parameters(),
                                            only.noise_predictor.parameters(),
                                            ref.noise_predictor.parameters()):
        torch.testing.assert_close(p_cut.grad, p_only.grad, msg=name)
    assert not torch.allclose(cut.noise_predictor.time_embed.weight.grad,
                              ref.noise_predictor.time_embed.weight.grad)
    # the rest (alignment, adapter, projection) still learns from the distillation loss
    torch.testing.assert_close(cut.noise_adapter.fc.weight.grad, ref.noise_adapter.fc.weight.grad)


def test_inference_steps_option():
    loss = DiffKD(4, 8, inference_steps=2)
    assert loss.scheduler.timestep_list() == [250, 0]
    out = loss(torch.randn(2, 4, 3, 3), torch.randn(2, 8, 3, 3))
    assert torch.isfinite(out['distill'])


def test_one_module_shared_across_fpn_levels():
    torch.manual_seed(0)
    loss = DiffKD(8, 8)
    total = 0
    for h, w in ((8, 10), (4, 5), (2, 3), (1, 2)):
        out = loss(torch.randn(2, 8, h, w), torch.randn(2, 8, h, w))
        total = total + sum(out.values())
    total.backward()
    _finite_grads(loss)
    # 5 sampling + 1 diffusion call of the predictor per level, 4 levels
    assert loss.noise_predictor.out_bn.num_batches_tracked.item() == 24


@pytest.mark.parametrize('dtype, ckpt', [(torch.bfloat16, False), (torch.float16, False),
                                         (torch.bfloat16, True)])
def test_autocast_low_precision_is_finite(dtype, ckpt):
    torch.manual_seed(0)
    loss = DiffKD(8, 16, use_ae=True, grad_checkpoint=ckpt)
    s = torch.randn(2, 8, 4, 4, requires_grad=True)
    t = torch.randn(2, 16, 4, 4)
    with torch.autocast('cpu', dtype=dtype):
        out = loss(s, t)
    for v in out.values():
        assert v.dtype == torch.float32 and torch.isfinite(v)
    sum(out.values()).backward()
    _finite_grads(loss)
    assert torch.isfinite(s.grad).all()
    assert loss.scheduler.alphas_cumprod.dtype == torch.float32


def test_autocast_bfloat16_logits():
    torch.manual_seed(0)
    loss = DiffKD(10, 10, kernel_size=1)
    s = torch.randn(4, 10, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss(s, torch.randn(4, 10))
    sum(out.values()).backward()
    assert all(torch.isfinite(v) for v in out.values())
    _finite_grads(loss)


def test_forward_never_reads_device_values(monkeypatch):
    """No .item() / .tolist() / bool() / numpy in forward or backward: no host-device sync."""
    loss = DiffKD(4, 16, use_ae=True, ae_channels=8)
    s, t = torch.randn(2, 4, 3, 3, requires_grad=True), torch.randn(2, 16, 3, 3)

    def forbidden(*args, **kwargs):
        raise AssertionError('forward read a tensor value on the host')

    for name in ('item', 'tolist', '__bool__', 'numpy', 'cpu', '__int__', '__float__'):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    out = loss(s, t)
    sum(out.values()).backward()
    monkeypatch.undo()
    assert torch.isfinite(s.grad).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='needs CUDA (benchmarks/gpu_check.py runs the cuda-marked tests)')
def test_cuda_forward_backward_does_not_synchronise():
    loss = DiffKD(16, 32, use_ae=True).cuda()
    s = torch.randn(2, 16, 7, 7, device='cuda', requires_grad=True)
    t = torch.randn(2, 32, 7, 7, device='cuda')
    loss(s, t)  # warm-up (lazy CUDA init may sync)
    torch.cuda.set_sync_debug_mode('error')
    try:
        out = loss(s, t)
        sum(out.values()).backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_diagnostics_are_detached_and_explain_the_parts():
    torch.manual_seed(0)
    loss = DiffKD(4, 8)
    s, t = torch.randn(2, 4, 5, 5), torch.randn(2, 8, 5, 5)
    out, extras = loss(s, t, return_denoised=True)
    assert set(out) == {'distill', 'diffusion'}  # diagnostics are not parts
    diag = out.diagnostics
    assert set(diag) == {'gamma', 'aligned_mse', 'denoise_gain'}
    assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in diag.values())
    assert torch.allclose(diag['gamma'], extras['gamma'].mean())
    aligned_mse = F.mse_loss(extras['aligned'], extras['target'])
    denoised_mse = F.mse_loss(extras['denoised'], extras['target'])
    assert torch.allclose(diag['aligned_mse'], aligned_mse)
    assert torch.allclose(diag['denoise_gain'], aligned_mse / denoised_mse)
    assert torch.allclose(out['distill'], denoised_mse)  # mse distill: the same quantity
    # logits (KL distillation): the gain is still measured in MSE
    out = DiffKD(10, 10, kernel_size=1)(torch.randn(4, 10), torch.randn(4, 10))
    assert torch.isfinite(out.diagnostics['denoise_gain'])


def test_distill_warmup_scales_only_the_distillation_term():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 3, 3), torch.randn(2, 8, 3, 3)
    plain = DiffKD(4, 8, use_ae=True, ae_channels=8)
    ramp = DiffKD(4, 8, use_ae=True, ae_channels=8, distill_warmup_iters=10)
    step = DiffKD(4, 8, use_ae=True, ae_channels=8, distill_warmup_iters=10,
                  distill_warmup='step')
    ramp.load_state_dict(plain.state_dict())
    step.load_state_dict(plain.state_dict())
    for it, want_ramp, want_step in ((0, 0.0, 0.0), (4, 0.4, 0.0), (9, 0.9, 0.0),
                                     (10, 1.0, 1.0), (500, 1.0, 1.0)):
        draws = dict(noise=torch.randn(2, 8, 3, 3), diffusion_noise=torch.randn(2, 8, 3, 3),
                     timesteps=torch.tensor([3, 700]))
        ref = plain(s, t, **draws)
        for module, want in ((ramp, want_ramp), (step, want_step)):
            out = module(s, t, iteration=it, **draws)
            assert torch.allclose(out['distill'], want * ref['distill'])
            assert torch.allclose(out['diffusion'], ref['diffusion'])
            assert torch.allclose(out['ae'], ref['ae'])
            assert out.diagnostics['distill_factor'].item() == pytest.approx(want)
    # the runner's iteration comes from MMEngine's message hub
    hub = MessageHub.get_instance('diffkd_warmup_test')
    hub.update_info('iter', 5)
    out = ramp(s, t)
    assert out.diagnostics['distill_factor'].item() == pytest.approx(0.5)
    ramp.eval()  # no warm-up outside training
    assert ramp.distill_factor() == 1.0
    with pytest.raises(ValueError, match='distill_warmup must be one of'):
        DiffKD(4, 8, distill_warmup_iters=3, distill_warmup='cosine')
    with pytest.raises(ValueError, match='distill_warmup_iters must be an int >= 0'):
        DiffKD(4, 8, distill_warmup_iters=-1)


def test_distill_warmup_without_an_iteration_is_an_error():
    loss = DiffKD(4, 8, distill_warmup_iters=3)
    MessageHub.get_instance('diffkd_no_iter_test')  # a fresh hub: no 'iter' recorded
    with pytest.raises(RuntimeError, match='no iteration is known'):
        loss(torch.randn(2, 4, 3, 3), torch.randn(2, 8, 3, 3))


def test_state_dict_roundtrip(tmp_path):
    loss = DiffKD(4, 8)
    s = torch.randn(2, 9, 4)  # tokens
    loss(s, torch.randn(2, 9, 8))
    # checkpoints hold weights and BN statistics only (tables are rebuilt), load weights_only
    assert not any(k.startswith('scheduler.') for k in loss.state_dict())
    torch.save(loss.state_dict(), tmp_path / 'diffkd.pth')
    fresh = DiffKD(4, 8)
    fresh.load_state_dict(torch.load(tmp_path / 'diffkd.pth', weights_only=True))


def test_default_kernel_size():
    assert DiffKD.default_kernel_size(torch.zeros(2, 10)) == 1
    assert DiffKD.default_kernel_size(torch.zeros(2, 9, 4)) == 3
    assert DiffKD.default_kernel_size(torch.zeros(2, 4, 3, 3)) == 3


@pytest.mark.parametrize('cfg', [dict(use_ae=True), dict(kernel_size=1),
                                 dict(distill_updates_diffusion=False)])
def test_grad_checkpoint_gives_the_same_numbers_and_statistics(cfg):
    torch.manual_seed(0)
    channels = (8, 16) if cfg.get('kernel_size') != 1 else (10, 10)
    shape = (2, 3, 3) if cfg.get('kernel_size') != 1 else ()
    ref = DiffKD(*channels, **cfg)
    ckpt = DiffKD(*channels, grad_checkpoint=True, **cfg)
    ckpt.load_state_dict(ref.state_dict())
    s0, t = torch.randn(2, channels[0], *shape[1:]), torch.randn(2, channels[1], *shape[1:])
    c = ref.channels
    draws = _draws(2, c, *((3, 3) if shape else (1, 1)))
    grads = {}
    for name, module in (('ref', ref), ('ckpt', ckpt)):
        s = s0.clone().requires_grad_(True)
        out = module(s, t, **draws)
        sum(out.values()).backward()
        grads[name] = (out, s.grad)
    for k in grads['ref'][0]:
        torch.testing.assert_close(grads['ckpt'][0][k], grads['ref'][0][k])
    torch.testing.assert_close(grads['ckpt'][1], grads['ref'][1])
    for (name, p), q in zip(ckpt.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    # running statistics (and batch counts) updated once per forward, not again in backward
    for (name, a), b in zip(ckpt.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_training_the_module_lowers_both_losses():
    """Sign and wiring check: 30 Adam steps on fixed features lower distill and diffusion."""
    torch.manual_seed(0)
    loss = DiffKD(8, 16)
    basis = torch.randn(16, 3)
    z = torch.randn(8, 3, 4, 4)
    teacher = torch.einsum('ck,bkhw->bchw', basis, z)           # rank-3 teacher features
    student = teacher[:, :8] + 0.5 * torch.randn(8, 8, 4, 4)     # noisy, narrower student
    draws = _draws(8, 16, 4, 4, seed=1)

    def evaluate():
        with torch.no_grad():
            return {k: v.item() for k, v in loss(student, teacher, **draws).items()}

    start = evaluate()
    opt = torch.optim.Adam(loss.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        sum(loss(student, teacher).values()).backward()
        opt.step()
    end = evaluate()
    assert end['distill'] < 0.5 * start['distill'], (start, end)
    assert end['diffusion'] < 0.8 * start['diffusion'], (start, end)


def test_kernel3_on_logits_warns_once():
    loss = DiffKD(16, 16)
    with pytest.warns(UserWarning, match='kernel_size=1'):
        loss(torch.randn(2, 16), torch.randn(2, 16))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loss(torch.randn(2, 16), torch.randn(2, 16))
