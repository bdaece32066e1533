"""DDIM scheduler for DiffKD: the noise schedule, the forward process and the deterministic step.

Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021 (eq. 12 with eta = 0), on
the linear beta schedule of Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models",
NeurIPS 2020. DiffKD walks only the second half of a grid built for ``2 * inference_steps``
steps: for 5 steps, t = 400, 300, 200, 100, 0.

Every table is a float32 buffer, so it follows the module to its device and the sampling loop
indexes it with Python ints: no host-device synchronisation, no numpy per call.
"""
from typing import List

import torch
import torch.nn as nn
from torch import Tensor

# float32 for half / bfloat16 samples (the step divides by sqrt(alpha)), else x's dtype
from ..losses._utils import compute_dtype as _compute_dtype


class DDIMScheduler(nn.Module):
    """Linear-beta DDIM with epsilon prediction, eta = 0, no clipping, final alpha_cumprod = 1.

    Args:
        num_train_timesteps: T, the length of the training noise schedule.
        inference_steps: S, the number of denoising steps walked at sampling time.
        beta_start, beta_end: ends of the linear beta schedule.
    """

    def __init__(self, num_train_timesteps: int = 1000, inference_steps: int = 5,
                 beta_start: float = 1e-4, beta_end: float = 0.02):
        super().__init__()
        if not isinstance(num_train_timesteps, int) or num_train_timesteps < 2:
            raise ValueError(f'num_train_timesteps must be an int >= 2; got '
                             f'{num_train_timesteps!r}.')
        if not isinstance(inference_steps, int) or not 1 <= inference_steps:
            raise ValueError(f'inference_steps must be an int >= 1; got {inference_steps!r}.')
        if 2 * inference_steps > num_train_timesteps:
            raise ValueError(f'inference_steps={inference_steps} needs a grid of '
                             f'2 * inference_steps = {2 * inference_steps} steps, more than '
                             f'num_train_timesteps={num_train_timesteps}; use inference_steps '
                             f'<= {num_train_timesteps // 2}.')
        if not 0 < beta_start < beta_end < 1:
            raise ValueError(f'need 0 < beta_start < beta_end < 1; got beta_start={beta_start}, '
                             f'beta_end={beta_end}.')
        self.num_train_timesteps = num_train_timesteps
        self.inference_steps = inference_steps

        self.beta_start, self.beta_end = beta_start, beta_end
        # Sampling grid: ratio = T // (2S); walk t = (S-1)*ratio, ..., ratio, 0; prev = t - ratio.
        self.step_ratio = num_train_timesteps // (2 * inference_steps)
        tables = self._tables()
        for name, table in tables.items():
            self.register_buffer(name, table, persistent=False)
        # The deterministic step is affine in (x_t, eps): x_{t-1} = c1 * x_t + c2 * eps, with
        #   c1 = sqrt(a_prev / a_t),  c2 = sqrt(1 - a_prev) - sqrt(a_prev (1 - a_t) / a_t).
        # Python floats from the float32 tables (built once on the CPU): a loop over them reads
        # nothing from the device and compiles to constants.
        a, b, a_prev, b_prev = (tables[f'step_sqrt_{n}'].double().tolist() for n in
                                ('alpha', 'one_minus_alpha', 'alpha_prev', 'one_minus_alpha_prev'))
        self.step_coefficients = [(ap / at, bp - ap * bt / at)
                                  for at, bt, ap, bp in zip(a, b, a_prev, b_prev)]

    def _tables(self, device=None):
        """Every table, built in float32 on the CPU (same values on every device), then moved."""
        # beta_t = linspace(beta_start, beta_end, T);  alpha_bar_t = prod_{s<=t} (1 - beta_s)
        betas = torch.linspace(self.beta_start, self.beta_end, self.num_train_timesteps,
                               dtype=torch.float32)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        steps = self.timestep_list()
        # alpha_bar at t and at the previous grid point (1 before the start: "set_alpha_to_one").
        alpha_t = alphas_cumprod[steps]
        one = torch.ones((), dtype=torch.float32)
        alpha_prev = torch.stack([alphas_cumprod[t - self.step_ratio] if t >= self.step_ratio
                                  else one for t in steps])
        tables = dict(
            alphas_cumprod=alphas_cumprod,
            sqrt_alphas_cumprod=alphas_cumprod.sqrt(),
            sqrt_one_minus_alphas_cumprod=(1.0 - alphas_cumprod).sqrt(),
            timesteps=torch.tensor(steps, dtype=torch.long),
            step_sqrt_alpha=alpha_t.sqrt(),
            step_sqrt_one_minus_alpha=(1.0 - alpha_t).sqrt(),
            step_sqrt_alpha_prev=alpha_prev.sqrt(),
            step_sqrt_one_minus_alpha_prev=(1.0 - alpha_prev).sqrt(),
        )
        return {name: table.to(device) for name, table in tables.items()}

    def _apply(self, fn, *args, **kwargs):
        """Follow ``.to(device)``, but keep the tables float32 through ``.half()``."""
        super()._apply(fn, *args, **kwargs)
        if self.alphas_cumprod.dtype != torch.float32:
            for name, table in self._tables(self.alphas_cumprod.device).items():
                setattr(self, name, table)
        return self

    def timestep_list(self) -> List[int]:
        """The timesteps walked at sampling time, as Python ints (no device access)."""
        return [i * self.step_ratio for i in reversed(range(self.inference_steps))]

    def add_noise(self, x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """Forward process q(x_t | x_0): x_t = sqrt(a_t) * x_0 + sqrt(1 - a_t) * noise.

        ``timesteps`` is a (B,) LongTensor on x0's device; the result is at least float32.
        """
        shape = (-1,) + (1,) * (x0.dim() - 1)
        sqrt_a = self.sqrt_alphas_cumprod[timesteps].view(shape)
        sqrt_one_minus_a = self.sqrt_one_minus_alphas_cumprod[timesteps].view(shape)
        dtype = _compute_dtype(x0)
        return sqrt_a.to(dtype) * x0.to(dtype) + sqrt_one_minus_a.to(dtype) * noise.to(dtype)

    def step(self, eps: Tensor, index: int, x: Tensor) -> Tensor:
        """One deterministic DDIM step from grid point ``index`` (0 = the noisiest) to the next.

        ``eps`` is the predicted noise at x. The result is at least float32.
        """
        dtype = _compute_dtype(x)
        # predicted x_0:  x0 = (x_t - sqrt(1 - a_t) * eps) / sqrt(a_t)            (DDIM eq. 12)
        # x_{t-1} = sqrt(a_prev) * x0 + sqrt(1 - a_prev) * eps               (eq. 12, sigma = 0)
        #         = c1 * x_t + c2 * eps                                   (step_coefficients)
        c1, c2 = self.step_coefficients[index]
        return torch.add(x.to(dtype) * c1, eps.to(dtype), alpha=c2)

    def extra_repr(self) -> str:
        return (f'num_train_timesteps={self.num_train_timesteps}, '
                f'inference_steps={self.inference_steps}, timesteps={self.timestep_list()}')
