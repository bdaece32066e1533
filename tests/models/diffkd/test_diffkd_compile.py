"""DiffKD's fast paths give the numbers of the plain ones: the oneDNN 1x1 convolutions, the fused
sampling loop (against the scheduler's step) and ``compile=`` (torch.compile of the loop)."""
import copy

import pytest
import torch
import torch.nn as nn

from mmdiffkd.models.diffkd import DiffKD
from mmdiffkd.models.diffkd import pointwise as pw

TOL = dict(rtol=1e-5, atol=1e-5)


def _run(module, s0, t, seed=0):
    torch.manual_seed(seed)
    s = s0.clone().requires_grad_(True)
    out = module(s, t)
    sum(out.values()).backward()
    return out, s.grad


def _assert_same(a, b):
    (out_a, grad_a), (out_b, grad_b) = a, b
    assert set(out_a) == set(out_b)
    for k in out_a:
        torch.testing.assert_close(out_b[k], out_a[k], **TOL)
    torch.testing.assert_close(grad_b, grad_a, **TOL)


def _same_params_and_stats(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q.grad, p.grad, **TOL, msg=name)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(y, x, **TOL, msg=name)


@pytest.mark.parametrize('batch, threads, onednn', [(2, 1, True), (16, 1, False),
                                                    (2, 2, False)])
def test_onednn_pointwise_is_the_convolution(batch, threads, onednn, monkeypatch):
    torch.manual_seed(0)
    conv = nn.Conv2d(12, 20, 1)
    x = torch.randn(batch, 12, 12, 12, requires_grad=True)  # >= ONEDNN_MIN_POSITIONS
    calls = []
    real = pw.OneDNNConv1x1.apply
    monkeypatch.setattr(pw.OneDNNConv1x1, 'apply', lambda *a: calls.append(1) or real(*a))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y = pw.pointwise(conv, x)
    finally:
        torch.set_num_threads(before)
    assert bool(calls) == onednn  # only where PyTorch would take its reference kernel
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, conv.weight, conv.bias), g)
    x_ref = x.detach().requires_grad_(True)
    y_ref = nn.functional.conv2d(x_ref, conv.weight, conv.bias)
    refs = torch.autograd.grad(y_ref, (x_ref, conv.weight, conv.bias), g)
    torch.testing.assert_close(y, y_ref, **TOL)
    for got, ref in zip(grads, refs):
        torch.testing.assert_close(got, ref, **TOL)


def test_onednn_pointwise_skips_small_and_large_maps_and_low_precision():
    conv = nn.Conv2d(4, 4, 1)
    assert pw._use_onednn(conv, torch.zeros(1, 4, 1, pw.ONEDNN_MIN_POSITIONS))
    assert not pw._use_onednn(conv, torch.zeros(1, 4, 1, pw.ONEDNN_MIN_POSITIONS - 1))
    assert not pw._use_onednn(conv, torch.zeros(1, 4, 1, pw.ONEDNN_MAX_POSITIONS + 1))
    assert not pw._use_onednn(conv, torch.zeros(2, 4, 3, 3, dtype=torch.bfloat16))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not pw._use_onednn(conv, torch.zeros(2, 4, 3, 3))


@pytest.mark.parametrize('cfg', [dict(), dict(use_ae=True), dict(distill_updates_diffusion=False)])
def test_module_on_onednn_gives_the_reference_kernels_numbers(cfg, monkeypatch):
    """The whole module (forward, every gradient, BatchNorm statistics) with and without the
    oneDNN 1x1 path, on maps large enough to take it."""
    torch.manual_seed(0)
    a, b = DiffKD(8, 16, **cfg), DiffKD(8, 16, **cfg)
    b.load_state_dict(a.state_dict())
    s0, t = torch.randn(2, 8, 12, 14), torch.randn(2, 16, 12, 14)
    calls = []
    real = pw.OneDNNConv1x1.apply
    monkeypatch.setattr(pw.OneDNNConv1x1, 'apply', lambda *x: calls.append(1) or real(*x))
    with_onednn = _run(a, s0, t)
    assert calls
    monkeypatch.setattr(pw, 'ONEDNN_MAX_POSITIONS', 0)
    calls.clear()
    plain = _run(b, s0, t)
    assert not calls
    _assert_same(plain, with_onednn)
    _same_params_and_stats(b, a)


def test_fused_sampling_loop_is_the_scheduler_walk():
    """x_{t-1} = scheduler.step(eps_theta(x_t, t), i, x_t), walked step by step, as the loop."""
    torch.manual_seed(0)
    module = DiffKD(6, 8).eval()
    x = torch.randn(2, 8, 4, 5)
    with torch.no_grad():
        got = module._sample(x.clone())
        ref = x.clone()
        for i, t in enumerate(module.scheduler.timestep_list()):
            eps = module.noise_predictor(ref, torch.tensor(t))
            ref = module.scheduler.step(eps, i, ref)
    torch.testing.assert_close(got, ref, **TOL)


def test_compile_option_errors():
    with pytest.raises(ValueError, match='compile must be'):
        DiffKD(4, 8, compile='yes')
    with pytest.raises(ValueError, match='compile and grad_checkpoint'):
        DiffKD(4, 8, compile=True, grad_checkpoint=True)
    assert DiffKD(4, 8, compile=dict(dynamic=True)).compile_options == dict(dynamic=True)
    assert DiffKD(4, 8, compile=True).compile_options == {}
    assert DiffKD(4, 8).compile_options is None


def _compiled_pair(cfg, backend):
    torch.manual_seed(0)
    c_s, c_t = (10, 10) if cfg.get('kernel_size') == 1 else (8, 16)
    eager = DiffKD(c_s, c_t, **cfg)
    options = dict(backend=backend) if backend else True
    compiled = DiffKD(c_s, c_t, compile=options, **cfg)
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


def _shapes(cfg):
    if cfg.get('kernel_size') == 1:
        return [((4, 10), (4, 10))]
    return [((2, 8, 6, 5), (2, 16, 6, 5)), ((2, 8, 3, 3), (2, 16, 3, 3))]  # two levels


def _check_compiled(cfg, backend):
    eager, compiled = _compiled_pair(cfg, backend)
    gen = torch.Generator().manual_seed(1)
    for i, (s_shape, t_shape) in enumerate(_shapes(cfg) * 2):  # each shape twice
        s0, t = torch.randn(s_shape, generator=gen), torch.randn(t_shape, generator=gen)
        _assert_same(_run(eager, s0, t, seed=i), _run(compiled, s0, t, seed=i))
    _same_params_and_stats(eager, compiled)


@pytest.mark.parametrize('cfg', [dict(), dict(kernel_size=1),
                                 dict(distill_updates_diffusion=False)])
def test_compiled_graph_gives_the_eager_numbers(cfg):
    """Dynamo's capture and AOTAutograd's joint graph (backend aot_eager: no code generation, so
    it stays fast) give the eager numbers and statistics, per level shape, twice."""
    _check_compiled(cfg, 'aot_eager')


@pytest.mark.slow
@pytest.mark.parametrize('cfg', [dict(), dict(kernel_size=1)])
def test_inductor_compiled_is_within_1e5_of_eager(cfg):
    """The default backend (inductor's generated C++ on the CPU): about a minute a config."""
    _check_compiled(cfg, None)


def test_compiled_module_copies():
    eager, compiled = _compiled_pair({}, 'aot_eager')
    s0, t = torch.randn(2, 8, 3, 3), torch.randn(2, 16, 3, 3)
    _run(compiled, s0, t)
    assert compiled._compiled_fns  # compiled on first use
    twin = copy.deepcopy(compiled)
    assert not twin.__dict__.get('_compiled_fns')
    _assert_same(_run(compiled, s0, t, seed=3), _run(twin, s0, t, seed=3))
