"""DiffKD: Huang et al., "Knowledge Diffusion for Distillation", NeurIPS 2023, arXiv 2305.15712.

A diffusion model trained on teacher features denoises the student feature; the denoised
feature is matched to the teacher. One module distils one student/teacher feature pair (or
several of equal width, when shared). ``docs/diffkd.md`` gives the algorithm, every option and
every deviation from the authors' module (the parity reference: ``tests/data/golden/diffkd``).
"""
import warnings
from contextlib import nullcontext
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub
from torch import Tensor
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from mmdiffkd.registry import MODELS

from ..losses._utils import flatten_logits, softmax_kl, token_grid
from ..losses._utils import upcast as _float
from ..losses.base import DistillLoss, LossParts
from .autoencoder import LinearAutoEncoder
from .layers import BatchNorm2d, frozen_running_stats
from .noise_adapter import NoiseAdapter
from .noise_predictor import TIME_EMBED_ROWS, NoisePredictor
from .pointwise import pointwise
from .scheduler import DDIMScheduler

WARMUPS = ('linear', 'step')
_LAYOUTS = {2: '(B, C) logits', 3: '(B, N, C) tokens', 4: '(B, C, H, W) feature maps'}


def _mse_value(a: Tensor, b: Tensor) -> Tensor:
    """MSE(a, b) as a constant scalar of its own. (Without autograd, ``F.mse_loss`` returns a
    0-d view of its full-size elementwise buffer, which a kept diagnostic would hold.)"""
    with torch.no_grad():
        return F.mse_loss(_float(a), _float(b)).clone()


def _noise_like(x: Tensor, noise: Optional[Tensor], generator, name: str, what: str) -> Tensor:
    """Injected ``noise`` checked against ``x`` and moved to its device, else a fresh N(0, I)."""
    if noise is None:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=_float(x).dtype)
    if noise.shape != x.shape:
        raise ValueError(f'DiffKD: {name} has shape {tuple(noise.shape)}; the {what} needs '
                         f'{tuple(x.shape)}.')
    return noise.to(x.device)


@MODELS.register_module()
class DiffKD(DistillLoss):
    """Distil a student feature into a teacher feature through a diffusion denoiser.

    Args:
        student_channels: C_s, channels of the student feature (the distiller fills it).
        teacher_channels: C_t, channels of the teacher feature (the distiller fills it).
        kernel_size: 3 for feature maps (Bottleneck nets), 1 for logits (1x1 MLP nets). The
            parameters depend on it, so it is fixed at build time;
            :meth:`default_kernel_size` gives 1 for (B, C) inputs and 3 otherwise.
        use_ae: compress the teacher feature with a linear autoencoder first (feature maps).
        ae_channels: latent width of the autoencoder; default ``teacher_channels // 2``.
        inference_steps: DDIM steps walked when denoising the student (the paper uses 5).
        num_train_timesteps: length of the noise schedule (at most 1280).
        distill_loss: ``'mse'`` (mean squared error) or ``'kl'`` (KL divergence of the channel
            softmax, temperature ``tau``); default ``'kl'`` for kernel 1, ``'mse'`` for kernel 3.
        tau: temperature of the ``'kl'`` distillation loss.
        distill_weight, diffusion_weight, ae_weight: relative weights of the three parts.
        distill_updates_diffusion: let the distillation loss's gradient reach the noise
            predictor through the sampling chain (the reference does). With False the predictor
            learns from the diffusion loss alone; the student still gets the full gradient.
        token_hw: (H, W) used to reshape (B, N, C) tokens; a forward kwarg of the same name
            overrides it. Without either, the other input's map size or a square is used.
        grad_checkpoint: recompute the noise predictor's activations in backward instead of
            storing them (less memory on large maps, one more predictor forward per call);
            BatchNorm statistics are updated once, as without it.
        distill_warmup_iters: let the diffusion model and the autoencoder learn before the
            student is taught: for the first ``distill_warmup_iters`` training iterations the
            distillation term is scaled by the warm-up factor (an addition to the paper, see
            ``docs/diffkd.md``). The iteration is the runner's (MMEngine's message hub), so it
            survives a resume and counts each iteration once however many FPN levels share
            this module. 0 (default) disables it.
        distill_warmup: ``'linear'`` (factor iter / N, from 0 to 1) or ``'step'`` (0 before
            iteration N, then 1).
        compile: run the denoiser (adapter, sampling loop, projection) and the diffusion loss
            through ``torch.compile`` (opt-in; the first forward of each new shape compiles, which takes
            tens of seconds). True for torch's defaults, or a dict of ``torch.compile`` options,
            e.g. ``dict(dynamic=True)`` for one graph over all FPN levels (by default the second
            level size recompiles with dynamic shapes), ``dict(dynamic=False)`` for one
            specialised graph per level. The numbers are those of eager mode to float rounding.
            Not with ``grad_checkpoint``.

    The forward returns :class:`LossParts` whose ``diagnostics`` (logged, never summed) are
    ``gamma`` (the noise adapter's mean), ``aligned_mse`` = MSE(aligned student, target) and
    ``denoise_gain`` = aligned_mse / MSE(denoised student, target): above 1 the denoiser brings
    the student closer to the teacher; with a warm-up also ``distill_factor``.
    """

    takes_channels = True
    record_dims = (2, 3, 4)
    diagnostics = ('gamma', 'denoise_gain', 'aligned_mse')

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 kernel_size: int = 3,
                 use_ae: bool = False,
                 ae_channels: Optional[int] = None,
                 inference_steps: int = 5,
                 num_train_timesteps: int = 1000,
                 distill_loss: Optional[str] = None,
                 tau: float = 1.0,
                 distill_weight: float = 1.0,
                 diffusion_weight: float = 1.0,
                 ae_weight: float = 1.0,
                 distill_updates_diffusion: bool = True,
                 token_hw: Optional[Sequence[int]] = None,
                 grad_checkpoint: bool = False,
                 distill_warmup_iters: int = 0,
                 distill_warmup: str = 'linear',
                 compile: Union[bool, dict] = False):
        super().__init__()
        for name, value in (('student_channels', student_channels),
                            ('teacher_channels', teacher_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'DiffKD: {name} must be a positive int; got {value!r} (the '
                                 f'distiller fills it from a dry forward when a config leaves '
                                 f'it out).')
        if kernel_size not in (1, 3):
            raise ValueError(f'DiffKD: kernel_size must be 3 (feature maps) or 1 (logits); '
                             f'got {kernel_size!r}.')
        if num_train_timesteps > TIME_EMBED_ROWS:
            raise ValueError(f'DiffKD: num_train_timesteps={num_train_timesteps} exceeds the '
                             f'{TIME_EMBED_ROWS} rows of the time embedding.')
        if distill_loss is None:
            distill_loss = 'kl' if kernel_size == 1 else 'mse'
        if distill_loss not in ('mse', 'kl'):
            raise ValueError(f"DiffKD: distill_loss must be 'mse' or 'kl'; got {distill_loss!r}.")
        if not tau > 0:
            raise ValueError(f'DiffKD: tau must be > 0; got {tau!r}.')
        if (not isinstance(distill_warmup_iters, int) or isinstance(distill_warmup_iters, bool)
                or distill_warmup_iters < 0):
            raise ValueError(f'DiffKD: distill_warmup_iters must be an int >= 0 (0: no '
                             f'warm-up); got {distill_warmup_iters!r}.')
        if distill_warmup not in WARMUPS:
            raise ValueError(f'DiffKD: distill_warmup must be one of {WARMUPS}; got '
                             f'{distill_warmup!r}.')
        if not isinstance(compile, (bool, dict)):
            raise ValueError(f'DiffKD: compile must be True / False or a dict of torch.compile '
                             f'options (e.g. dict(dynamic=True)); got {compile!r}.')
        if compile is not False and grad_checkpoint:
            raise ValueError('DiffKD: compile and grad_checkpoint cannot be combined (the '
                             'checkpointed predictor is recomputed outside the compiled graph); '
                             'set one of them.')
        if use_ae and kernel_size == 1:
            raise ValueError('DiffKD: use_ae=True needs kernel_size=3; the autoencoder '
                             'compresses feature maps, and logits have no channels to spare.')
        if ae_channels is not None and not use_ae:
            raise ValueError(f'DiffKD: ae_channels={ae_channels} was given with use_ae=False; '
                             f'set use_ae=True or drop ae_channels.')
        if use_ae:
            ae_channels = teacher_channels // 2 if ae_channels is None else ae_channels
            if not isinstance(ae_channels, int) or ae_channels < 1:
                raise ValueError(f'DiffKD: ae_channels must be a positive int; got '
                                 f'{ae_channels!r}.')
        working = ae_channels if use_ae else teacher_channels
        if kernel_size == 3 and working < 8:
            raise ValueError(f'DiffKD: kernel_size=3 nets reduce the working width '
                             f'({"ae_channels" if use_ae else "teacher_channels"}={working}) by 8 '
                             f'in the noise adapter; it must be >= 8.')
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.kernel_size = kernel_size
        self.use_ae = use_ae
        self.ae_channels = ae_channels
        self.channels = ae_channels if use_ae else teacher_channels
        self.distill_loss = distill_loss
        self.tau = float(tau)
        self.distill_weight = distill_weight
        self.diffusion_weight = diffusion_weight
        self.ae_weight = ae_weight
        self.distill_updates_diffusion = distill_updates_diffusion
        self.token_hw = self._check_hw(token_hw)
        self.grad_checkpoint = grad_checkpoint
        self.distill_warmup_iters = distill_warmup_iters
        self.distill_warmup = distill_warmup
        # (not ``self.compile``: that is nn.Module's method)
        self.compile_options = None if compile is False else ({} if compile is True
                                                               else dict(compile))
        self._warned_logits = False

        c = self.channels
        self.autoencoder = LinearAutoEncoder(teacher_channels, c) if use_ae else None
        self.align = nn.Conv2d(student_channels, c, 1)
        self.noise_predictor = NoisePredictor(c, kernel_size)
        self.noise_adapter = NoiseAdapter(c, kernel_size)
        self.proj_conv = nn.Conv2d(c, c, 1)
        self.proj_bn = BatchNorm2d(c)
        self.scheduler = DDIMScheduler(num_train_timesteps, inference_steps)

    @property
    def inference_steps(self) -> int:
        return self.scheduler.inference_steps

    @staticmethod
    def default_kernel_size(feature: Tensor) -> int:
        """1 for (B, C) logits, 3 for maps and tokens: what a builder should pass."""
        return 1 if feature.dim() == 2 else 3

    @classmethod
    def config_from_records(cls, student: Tensor, teacher: Tensor) -> dict:
        """Defaults the distiller fills from the recorded features (a config's value wins)."""
        return dict(kernel_size=cls.default_kernel_size(student))

    # ----------------------------------------------------------------------------- layouts
    @staticmethod
    def _check_hw(hw) -> Optional[Tuple[int, int]]:
        if hw is None:
            return None
        if (not isinstance(hw, (tuple, list)) or len(hw) != 2
                or not all(isinstance(v, int) and v > 0 for v in hw)):
            raise ValueError(f'DiffKD: token_hw must be a pair of positive ints (H, W); '
                             f'got {hw!r}.')
        return tuple(hw)

    @staticmethod
    def _to_map(x: Tensor, what: str, hw, other: Tensor) -> Tensor:
        """(B, C) -> (B, C, 1, 1); (B, N, C) -> (B, C, H, W); (B, C, H, W) unchanged."""
        if x.dim() == 4:
            return x
        if x.dim() == 2:
            return x[:, :, None, None]
        if x.dim() != 3:
            raise ValueError(f'DiffKD: the {what} feature has shape {tuple(x.shape)}; expected '
                             f'{", ".join(_LAYOUTS.values())}.')
        b, n, c = x.shape
        try:
            h, w = token_grid(n, hw, other)
        except ValueError as err:
            raise ValueError(f'DiffKD: the {what} tokens {tuple(x.shape)}: {err} (token_hw=(H, '
                             f'W); in a distiller, a per-side transform: drop_tokens, '
                             f'tokens_to_map).') from None
        return x.transpose(1, 2).reshape(b, c, h, w)

    @classmethod
    def check_records(cls, student: Tensor, teacher: Tensor, cfg) -> None:
        """Logits, tokens or maps, mixed as the forward reshapes them (tokens take the other
        side's grid, ``token_hw`` or a square): batch and grid must then agree."""
        cls.check_dims(student, teacher)
        hw = cls._check_hw(cfg.get('token_hw'))
        s = cls._to_map(student, 'student', hw, teacher)
        t = cls._to_map(teacher, 'teacher', hw, student)
        if s.shape[0] != t.shape[0] or s.shape[2:] != t.shape[2:]:
            raise ValueError(f'DiffKD needs the student and teacher on the same grid; got '
                             f'student {tuple(student.shape)} and teacher {tuple(teacher.shape)} '
                             f'(as maps: {tuple(s.shape)} vs {tuple(t.shape)}).')

    @staticmethod
    def _from_map(x: Tensor, like: Tensor) -> Tensor:
        """Back to the layout of ``like`` (the student input)."""
        if like.dim() == 2:
            return x.flatten(1)
        if like.dim() == 3:
            return x.flatten(2).transpose(1, 2)
        return x

    def _check_inputs(self, s: Tensor, t: Tensor, student: Tensor, teacher: Tensor) -> None:
        if s.shape[1] != self.student_channels or t.shape[1] != self.teacher_channels:
            raise ValueError(f'DiffKD: built for student_channels={self.student_channels}, '
                             f'teacher_channels={self.teacher_channels}, but got student '
                             f'{tuple(student.shape)} ({s.shape[1]} channels) and teacher '
                             f'{tuple(teacher.shape)} ({t.shape[1]} channels).')
        if s.shape[0] != t.shape[0] or s.shape[2:] != t.shape[2:]:
            raise ValueError(f'DiffKD: student {tuple(student.shape)} and teacher '
                             f'{tuple(teacher.shape)} must have the same batch size and '
                             f'spatial size (as maps: {tuple(s.shape)} vs {tuple(t.shape)}); '
                             f'resize one of them before the loss.')

    # ----------------------------------------------------------------------------- parts
    def _predict(self, x: Tensor, t: Optional[Tensor], detach_params: bool = False) -> Tensor:
        """eps_theta(x, t), optionally with constant parameters and/or activation checkpointing.

        ``t=None``: ``x`` already holds the time embedding.
        """
        predictor = self.noise_predictor
        params = ({n: p.detach() for n, p in predictor.named_parameters()}
                  if detach_params else None)
        calls = []  # a checkpointed forward runs twice: once now, once again in backward

        def run(x):
            recompute = bool(calls)
            calls.append(True)
            with frozen_running_stats(predictor) if recompute else nullcontext():
                if params is None:
                    return predictor(x, t)
                return functional_call(predictor, params, (x, t), strict=False)

        if self.grad_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(run, x, use_reentrant=False, preserve_rng_state=False)
        return run(x)

    def denoise(self, student: Tensor, noise: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        """Denoise an aligned student map (B, C, H, W); returns (refined, gamma)."""
        noise = _noise_like(student, noise, generator, 'noise', 'aligned student map')
        return self._compiled(self._denoise)(student, noise)

    def _denoise(self, student: Tensor, noise: Tensor) -> Tuple[Tensor, Tensor]:
        """Adapter, start point, sampling loop and projection (compiled with ``compile``)."""
        # gamma in (0, 1) per sample: how much of the student survives in the start point
        gamma = self.noise_adapter(student)
        # x_T = gamma * s + (1 - gamma) * eps   (a linear mix, not the sqrt mix of q(x_t | x_0))
        dtype = torch.promote_types(noise.dtype, _float(student).dtype)
        # (x_T gets no name here: the loop's first step replaces it, and it is freed then)
        sample = self._sample(torch.lerp(noise.to(dtype), student.to(dtype),
                                         gamma.view(-1, 1, 1, 1).to(dtype)))
        return self.proj_bn(pointwise(self.proj_conv, sample)), gamma

    def _sample(self, x: Tensor) -> Tensor:
        """The DDIM chain from x_T (not modified); returns x_0.

        Each step is eps = eps_theta(x_t + emb(t)) and x_{t-1} = c1 * x_t + c2 * eps (the
        scheduler's ``step``, an affine map). The loop keeps x_t = scale * x and folds c1 into
        the Python float ``scale``, so a step is two passes over the map, both fused with their
        neighbour: ``h = emb(t) + scale * x`` (the predictor's input) and ``x += c2 / (c1 *
        scale) * eps`` (in place after the first step); the time embeddings of all steps are
        looked up at once. Nothing is read back from the device.
        """
        detach = not self.distill_updates_diffusion
        weight = self.noise_predictor.time_embed.weight
        emb = F.embedding(self.scheduler.timesteps, weight.detach() if detach else weight)
        scale = 1.0
        for i, (c1, c2) in enumerate(self.scheduler.step_coefficients):
            h = torch.add(emb[i].view(1, -1, 1, 1), x, alpha=scale)
            eps = self._predict(h, None, detach)
            alpha = c2 / (c1 * scale)
            x = torch.add(x, eps, alpha=alpha) if i == 0 else x.add_(eps, alpha=alpha)
            scale *= c1
        return x.mul_(scale)

    def diffusion_loss(self, target: Tensor, noise: Optional[Tensor] = None,
                       timesteps: Optional[Tensor] = None,
                       generator: Optional[torch.Generator] = None) -> Tensor:
        """|| eps_theta(sqrt(a_t) x_0 + sqrt(1 - a_t) eps, t) - eps ||^2, t ~ U{0..T-1}."""
        b = target.shape[0]
        noise = _noise_like(target, noise, generator, 'diffusion_noise', 'target map')
        num_t = self.scheduler.num_train_timesteps
        if timesteps is None:
            timesteps = torch.randint(0, num_t, (b,), generator=generator, device=target.device)
        else:
            if timesteps.shape != (b,) or timesteps.is_floating_point():
                raise ValueError(f'DiffKD: timesteps must be an integer tensor of shape '
                                 f'({b},); got {timesteps.dtype} {tuple(timesteps.shape)}.')
            # a range check reads the values: only free on the CPU
            if timesteps.device.type == 'cpu' and ((timesteps < 0) | (timesteps >= num_t)).any():
                raise ValueError(f'DiffKD: timesteps must lie in [0, {num_t}); got '
                                 f'{timesteps.tolist()}.')
            timesteps = timesteps.to(device=target.device, dtype=torch.long)
        return self._compiled(self._diffusion_loss)(target, noise, timesteps)

    def _diffusion_loss(self, target: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        # x_t has no name: only the predictor's input (x_t + emb(t)) is kept for backward
        eps = self._predict(self.scheduler.add_noise(target, noise, timesteps), timesteps)
        return F.mse_loss(_float(eps), _float(noise))

    def _compiled(self, fn):
        """``fn`` (a method), through ``torch.compile`` with the ``compile`` options when set."""
        if self.compile_options is None:
            return fn
        cache = self.__dict__.setdefault('_compiled_fns', {})
        if fn.__name__ not in cache:
            cache[fn.__name__] = torch.compile(fn, **self.compile_options)
        return cache[fn.__name__]

    def __getstate__(self):
        # compiled functions hold this module; copies and pickles recompile on first use
        state = self.__dict__.copy()
        state.pop('_compiled_fns', None)
        return state

    def _encode(self, t: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """(target, autoencoder loss): the encoded, detached teacher map, or ``t`` itself."""
        if not self.use_ae:
            return t, None
        latent, rec = self.autoencoder(t)
        return latent.detach(), F.mse_loss(_float(rec), _float(t))

    def _distill(self, refined: Tensor, target: Tensor) -> Tensor:
        refined, target = _float(refined), _float(target)
        if self.distill_loss == 'mse':
            return F.mse_loss(refined, target)
        # KL(softmax(t / tau) || softmax(s / tau)) * tau^2 over channels, mean over B*H*W
        return softmax_kl(flatten_logits(refined), flatten_logits(target), self.tau)

    def distill_factor(self, iteration: Optional[int] = None) -> float:
        """The warm-up factor of the distillation term at ``iteration`` (default: the runner's).

        ``'linear'``: min(iter / N, 1); ``'step'``: 0 for iter < N, then 1. Always 1 without a
        warm-up or outside training.
        """
        n = self.distill_warmup_iters
        if not n or not self.training:
            return 1.0
        if iteration is None:
            iteration = MessageHub.get_current_instance().get_info('iter')
        if iteration is None:
            raise RuntimeError('DiffKD: distill_warmup_iters is set but no iteration is known: '
                               "train through MMEngine's Runner (it records the iteration in "
                               "the message hub) or pass forward(..., iteration=i).")
        if self.distill_warmup == 'step':
            return 0.0 if iteration < n else 1.0
        return min(iteration / n, 1.0)

    # ----------------------------------------------------------------------------- forward
    def forward(self, student: Tensor, teacher: Tensor, data_samples=None, *,
                token_hw: Optional[Sequence[int]] = None,
                noise: Optional[Tensor] = None,
                diffusion_noise: Optional[Tensor] = None,
                timesteps: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None,
                iteration: Optional[int] = None,
                return_denoised: bool = False
                ) -> Union[LossParts, Tuple[LossParts, Dict[str, Tensor]]]:
        """Weighted losses ``distill``, ``diffusion`` and, with the autoencoder, ``ae``.

        ``noise`` (start of sampling), ``diffusion_noise`` and ``timesteps`` (diffusion loss)
        replace the random draws, which are otherwise taken in that order from ``generator``
        (or the global RNG). ``iteration`` overrides the runner's for the warm-up. With
        ``return_denoised=True`` returns ``(losses, extras)``, extras = ``denoised`` (in the
        student's layout), ``aligned`` and ``target`` (maps) and ``gamma`` (B,).
        """
        if student.dim() == 2 and self.kernel_size == 3 and not self._warned_logits:
            self._warned_logits = True
            warnings.warn(f'DiffKD(kernel_size=3) got (B, C) logits {tuple(student.shape)}; the '
                          f'paper distils logits with kernel_size=1 (1x1 nets, KL loss).')
        hw = self._check_hw(token_hw) or self.token_hw
        s = self._to_map(student, 'student', hw, teacher)
        t = self._to_map(teacher, 'teacher', hw, student)  # detached by DistillLoss
        self._check_inputs(s, t, student, teacher)

        factor = self.distill_factor(iteration)
        aligned = pointwise(self.align, s)
        target, ae_loss = self._encode(t)
        aligned_mse = _mse_value(aligned, target)  # a diagnostic
        refined, gamma = self.denoise(aligned, noise, generator)
        diffusion = self.diffusion_loss(target, diffusion_noise, timesteps, generator)
        distill = self._distill(refined, target)
        parts = dict(distill=self.distill_weight * factor * distill,
                     diffusion=self.diffusion_weight * diffusion)
        if self.use_ae:
            parts['ae'] = self.ae_weight * ae_loss

        with torch.no_grad():  # device tensors only: no host sync
            denoised_mse = distill if self.distill_loss == 'mse' else \
                _mse_value(refined, target)
            diagnostics = dict(gamma=gamma.mean(), aligned_mse=aligned_mse,
                               denoise_gain=aligned_mse / denoised_mse.clamp_min(1e-12))
            if self.distill_warmup_iters:
                diagnostics['distill_factor'] = distill.new_full((), factor)
        losses = LossParts(parts, diagnostics)
        if not return_denoised:
            return losses
        return losses, dict(denoised=self._from_map(refined, student), refined=refined,
                            aligned=aligned, target=target, gamma=gamma)

    def teacher_losses(self, teacher: Tensor, *, token_hw: Optional[Sequence[int]] = None,
                       diffusion_noise: Optional[Tensor] = None,
                       timesteps: Optional[Tensor] = None,
                       generator: Optional[torch.Generator] = None) -> LossParts:
        """The parts that learn from the teacher alone: weighted ``diffusion`` (and ``ae``).

        Pre-training (``tools/pretrain_diffkd.py``) minimises them on the teacher's features of
        the training set before distillation starts; the forward computes the same terms.
        """
        t = self._to_map(teacher, 'teacher', self._check_hw(token_hw) or self.token_hw,
                         teacher).detach()
        if t.shape[1] != self.teacher_channels:
            raise ValueError(f'DiffKD: built for teacher_channels={self.teacher_channels}, but '
                             f'got a teacher of shape {tuple(teacher.shape)}.')
        target, ae_loss = self._encode(t)
        parts = dict(diffusion=self.diffusion_weight * self.diffusion_loss(
            target, diffusion_noise, timesteps, generator))
        if self.use_ae:
            parts['ae'] = self.ae_weight * ae_loss
        return LossParts(parts)

    def extra_repr(self) -> str:
        return (f'student_channels={self.student_channels}, '
                f'teacher_channels={self.teacher_channels}, kernel_size={self.kernel_size}, '
                f'use_ae={self.use_ae}, channels={self.channels}, '
                f'distill_loss={self.distill_loss!r}, '
                f'distill_updates_diffusion={self.distill_updates_diffusion}, '
                f'grad_checkpoint={self.grad_checkpoint}, '
                f'distill_warmup_iters={self.distill_warmup_iters}, '
                f'distill_warmup={self.distill_warmup!r}, compile={self.compile_options!r}')
