"""DiffKD on CUDA: the CPU's numbers, compiled as eager, bfloat16 autocast, no host syncs.

Marked ``cuda`` and skipped without a GPU (CI has none): ``benchmarks/gpu_check.py`` runs them
(``pytest -m cuda``) wherever a GPU is available. TF32 is off so float32 means float32.
"""
import pytest
import torch

from mmdiffkd.models.diffkd import DiffKD

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason='needs CUDA (benchmarks/gpu_check.py runs these)')]
CONFIGS = [dict(), dict(use_ae=True), dict(kernel_size=1)]


@pytest.fixture(autouse=True)
def _no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _inputs(cfg, device):
    gen = torch.Generator().manual_seed(0)
    if cfg.get('kernel_size') == 1:
        s, t = torch.randn(4, 10, generator=gen), torch.randn(4, 10, generator=gen)
        c = 10
    else:
        s, t = torch.randn(2, 8, 6, 5, generator=gen), torch.randn(2, 16, 6, 5, generator=gen)
        c = 8 if cfg.get('use_ae') else 16
    shape = (s.shape[0], c) + tuple(s.shape[2:] or (1, 1))
    draws = dict(noise=torch.randn(shape, generator=gen),
                 diffusion_noise=torch.randn(shape, generator=gen),
                 timesteps=torch.randint(0, 1000, (s.shape[0],), generator=gen))
    return (s.to(device).requires_grad_(True), t.to(device),
            {k: v.to(device) for k, v in draws.items()})


def _pass(module, cfg, device):
    s, t, draws = _inputs(cfg, device)
    out = module(s, t, **draws)
    sum(out.values()).backward()
    grads = {n: p.grad.cpu() for n, p in module.named_parameters()}
    return {k: v.detach().cpu() for k, v in out.items()}, s.grad.cpu(), grads


def _pair(cfg, **kwargs):
    torch.manual_seed(0)
    a = DiffKD(*((10, 10) if cfg.get('kernel_size') == 1 else (8, 16)), **cfg)
    b = DiffKD(*((10, 10) if cfg.get('kernel_size') == 1 else (8, 16)), **cfg, **kwargs)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize('cfg', CONFIGS)
def test_cuda_gives_the_cpu_numbers(cfg):
    cpu, gpu = _pair(cfg)
    gpu.cuda()
    ref, got = _pass(cpu, cfg, 'cpu'), _pass(gpu, cfg, 'cuda')
    for k in ref[0]:
        torch.testing.assert_close(got[0][k], ref[0][k], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-4, atol=1e-5)
    for name in ref[2]:
        torch.testing.assert_close(got[2][name], ref[2][name], rtol=1e-4, atol=1e-5, msg=name)
    for (name, a), b in zip(gpu.state_dict().items(), cpu.state_dict().values()):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize('cfg', CONFIGS)
def test_compiled_is_eager_on_cuda(cfg):
    eager, compiled = _pair(cfg, compile=True)
    eager.cuda(), compiled.cuda()
    for _ in range(2):  # the second pass reuses the compiled graphs
        ref, got = _pass(eager, cfg, 'cuda'), _pass(compiled, cfg, 'cuda')
        for k in ref[0]:
            torch.testing.assert_close(got[0][k], ref[0][k], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-5)
        for name in ref[2]:
            torch.testing.assert_close(got[2][name], ref[2][name], rtol=1e-5, atol=1e-5,
                                       msg=name)
        eager.zero_grad(), compiled.zero_grad()


def test_compiled_fpn_levels_share_one_module_without_syncs():
    torch.manual_seed(0)
    loss = DiffKD(8, 8, compile=dict(dynamic=True)).cuda()
    levels = [(8, 10), (4, 5), (2, 3)]
    feats = [(torch.randn(2, 8, h, w, device='cuda', requires_grad=True),
              torch.randn(2, 8, h, w, device='cuda')) for h, w in levels]
    for _ in range(2):  # compile (may synchronise)
        sum(sum(loss(s, t).values()) for s, t in feats).backward()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        total = sum(sum(loss(s, t).values()) for s, t in feats)
        total.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(total)


@pytest.mark.parametrize('cfg', CONFIGS)
def test_bfloat16_autocast_on_cuda(cfg):
    _, module = _pair(cfg)
    module.cuda()
    s, t, draws = _inputs(cfg, 'cuda')
    with torch.autocast('cuda', dtype=torch.bfloat16):
        out = module(s, t, **draws)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.values())
    sum(out.values()).backward()
    assert torch.isfinite(s.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())
