"""DDIMScheduler against closed-form values computed here in float64."""
import math

import pytest
import torch

from mmdiffkd.models.diffkd import DDIMScheduler


def alpha_bar(t, num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02):
    """prod_{s<=t} (1 - beta_s), linear betas, in float64 Python arithmetic."""
    step = (beta_end - beta_start) / (num_train_timesteps - 1)
    return math.prod(1 - (beta_start + s * step) for s in range(t + 1))


def test_alphas_cumprod_closed_form():
    sched = DDIMScheduler()
    assert sched.alphas_cumprod.dtype == torch.float32
    assert sched.alphas_cumprod.shape == (1000,)
    for t in (0, 1, 99, 400, 999):
        assert sched.alphas_cumprod[t].item() == pytest.approx(alpha_bar(t), rel=2e-5)
    # alpha_bar_0 = 1 - beta_0 exactly; monotone decreasing
    assert sched.alphas_cumprod[0].item() == pytest.approx(1 - 1e-4, rel=1e-7)
    assert (sched.alphas_cumprod.diff() < 0).all()


@pytest.mark.parametrize('steps, expected', [
    (5, [400, 300, 200, 100, 0]),     # the paper's setting, grid of 10 steps
    (3, [332, 166, 0]),               # ratio 1000 // 6 = 166
    (1, [0]),                         # ratio 500: a single step from t = 0
    (10, [450, 400, 350, 300, 250, 200, 150, 100, 50, 0]),
])
def test_sampling_grid_is_second_half_of_double_grid(steps, expected):
    sched = DDIMScheduler(inference_steps=steps)
    assert sched.timestep_list() == expected
    assert sched.timesteps.tolist() == expected
    assert sched.timesteps.dtype == torch.long


@pytest.mark.parametrize('steps', [5, 3])
def test_step_recovers_the_deterministic_trajectory(steps):
    """With the true eps, x_t = sqrt(a_t) x0 + sqrt(1-a_t) eps steps to the same x0 at t_prev."""
    sched = DDIMScheduler(inference_steps=steps)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    eps = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    ratio = 1000 // (2 * steps)
    for i, t in enumerate(sched.timestep_list()):
        a_t = alpha_bar(t)
        a_prev = alpha_bar(t - ratio) if t >= ratio else 1.0
        x_t = math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * eps
        expected = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
        got = sched.step(eps, i, x_t)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_step_closed_form_single_values():
    sched = DDIMScheduler(inference_steps=5)
    x = torch.tensor([1.5, -0.25])
    eps = torch.tensor([0.5, 2.0])
    # step 0: t = 400 -> 300
    a_t, a_prev = alpha_bar(400), alpha_bar(300)
    x0 = (x.double() - math.sqrt(1 - a_t) * eps.double()) / math.sqrt(a_t)
    expected = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps.double()
    torch.testing.assert_close(sched.step(eps, 0, x).double(), expected, rtol=1e-5, atol=1e-6)
    # eps = 0 scales by sqrt(a_prev / a_t)
    torch.testing.assert_close(sched.step(torch.zeros(2), 0, x).double(),
                               x.double() * math.sqrt(a_prev / a_t), rtol=1e-5, atol=1e-6)
    # last step (t = 0): a_prev = 1, the output is the predicted x0
    a0 = alpha_bar(0)
    torch.testing.assert_close(sched.step(eps, 4, x).double(),
                               (x.double() - math.sqrt(1 - a0) * eps.double()) / math.sqrt(a0),
                               rtol=1e-5, atol=1e-5)  # 1 - a_0 = 1e-4 in float32


def test_add_noise_closed_form():
    sched = DDIMScheduler()
    x0 = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    noise = torch.tensor([[0.5, -0.5], [1.0, 2.0]])
    t = torch.tensor([0, 999])
    got = sched.add_noise(x0, noise, t)
    for b in range(2):
        a = alpha_bar(int(t[b]))
        expected = math.sqrt(a) * x0[b].double() + math.sqrt(1 - a) * noise[b].double()
        torch.testing.assert_close(got[b].double(), expected, rtol=1e-5, atol=1e-6)


def test_tables_stay_float32_and_out_of_state_dict():
    sched = DDIMScheduler().half()
    for name, buf in sched.named_buffers():
        assert buf.dtype == (torch.long if name == 'timesteps' else torch.float32), name
    assert sched.state_dict() == {}
    # low-precision samples are stepped in float32
    x = torch.randn(2, 3, dtype=torch.bfloat16)
    assert sched.step(x, 0, x).dtype == torch.float32
    assert sched.add_noise(x, x, torch.tensor([5, 7])).dtype == torch.float32
    torch.testing.assert_close(sched.alphas_cumprod, DDIMScheduler().alphas_cumprod)


@pytest.mark.parametrize('kwargs, match', [
    (dict(inference_steps=0), 'inference_steps must be an int >= 1; got 0'),
    (dict(inference_steps=501), 'use inference_steps <= 500'),
    (dict(inference_steps=2.5), 'got 2.5'),
    (dict(num_train_timesteps=1), 'num_train_timesteps must be an int >= 2; got 1'),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DDIMScheduler(**kwargs)
