"""See the denoiser work: pictures of what each DiffKD entry matches, and its diagnostics' curves.

Add to a distillation config (opt-in)::

    custom_hooks = [dict(type='mmdiffkd.DiffKDVisHook', interval=200)]

Every ``interval`` training iterations (and once at the end) it takes one fixed validation image
through the teacher and the student in eval mode and draws, for every DiffKD entry (declaration
and FPN level), the 1x1-aligned student map, the denoised student map and the teacher target side
by side, reduced to something readable: ``'pca'`` maps the channels to RGB with the target's
first three principal components (the same basis and scale for the three maps, so equal colours
mean equal features) and ``'mean_abs'`` draws mean |activation| heat maps; logits are drawn as
curves over the classes. At the end of training it plots the logged diagnostics (``gamma``,
``denoise_gain``, ``aligned_mse``, see :class:`mmdiffkd.models.diffkd.DiffKD`) against the
iteration. Both go through MMEngine's Visualizer backends: local PNG files under
``<work_dir>/<timestamp>/vis_data/vis_image/`` by default, TensorBoard when the config's
``visualizer`` has ``TensorboardVisBackend``.

The pictures use a fixed sampling noise and leave every random generator as it found it, so a
run with the hook trains exactly as one without it.
"""
import random

import numpy as np
import torch
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdiffkd.models.diffkd import DiffKD
from mmdiffkd.registry import HOOKS

REDUCTIONS = ('pca', 'mean_abs')
CURVES = ('gamma', 'denoise_gain', 'aligned_mse')


@HOOKS.register_module()
class DiffKDVisHook(Hook):
    """Draw aligned / denoised / target maps of each DiffKD entry, and the diagnostics' curves.

    Args:
        interval (int): training iterations between pictures; 0 draws only at the end.
        sample_index (int): index of the validation sample to draw (the training set's when
            the config has no validation loop).
        reduction (str): ``'pca'`` (channels to RGB) or ``'mean_abs'`` (heat maps).
        curves (bool): plot the diagnostics against the iteration at the end of training.
    """

    priority = 'LOW'

    def __init__(self, interval=500, sample_index=0, reduction='pca', curves=True):
        if not isinstance(interval, int) or interval < 0:
            raise ValueError(f'DiffKDVisHook: interval must be an int >= 0 (0: only at the '
                             f'end); got {interval!r}.')
        if not isinstance(sample_index, int) or sample_index < 0:
            raise ValueError(f'DiffKDVisHook: sample_index must be an int >= 0; got '
                             f'{sample_index!r}.')
        if reduction not in REDUCTIONS:
            raise ValueError(f'DiffKDVisHook: reduction must be one of {REDUCTIONS}; got '
                             f'{reduction!r}.')
        self.interval = interval
        self.sample_index = sample_index
        self.reduction = reduction
        self.curves = curves
        self._batch = None

    # ---- hook points ---------------------------------------------------------------------------

    def before_train(self, runner):
        model = _unwrap(runner.model)
        if not any(isinstance(m, DiffKD) for m in getattr(model, 'distill_losses',
                                                         torch.nn.Module()).modules()):
            raise ValueError('DiffKDVisHook: the model has no DiffKD declaration to draw '
                             '(model.type must be mmdiffkd.Distiller with a DiffKD loss); remove '
                             'the hook from custom_hooks.')
        loader = runner.val_dataloader if runner._val_loop is not None \
            else runner.train_dataloader
        dataset = loader.dataset
        if self.sample_index >= len(dataset):
            raise IndexError(f'DiffKDVisHook: sample_index={self.sample_index}, but the '
                             f'dataset has {len(dataset)} samples; valid: [0, {len(dataset)}).')
        self._batch = loader.collate_fn([dataset[self.sample_index]])

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self._draw_maps(runner, runner.iter + 1)  # iterations done

    def after_train(self, runner):
        if not (self.interval and runner.iter % self.interval == 0):
            self._draw_maps(runner, runner.iter)  # the final state, unless just drawn
        if self.curves:
            self._draw_curves(runner)

    # ---- pictures ------------------------------------------------------------------------------

    def denoised_maps(self, model):
        """``[(entry key, extras)]`` for every DiffKD entry, on the fixed sample (eval mode)."""
        was_training = model.training
        states = _rng_states()
        model.eval()
        try:
            with torch.no_grad():
                data = model.data_preprocessor(self._batch, False)
                _, pairs = model.distill_pairs(data['inputs'], data['data_samples'])
                rows = []
                for p in pairs:
                    if isinstance(p.module, DiffKD):
                        device = p.teacher.device
                        gen = torch.Generator(device=device).manual_seed(0)
                        losses, extras = p.module(p.student, p.teacher, return_denoised=True,
                                                  generator=gen)
                        extras['diagnostics'] = losses.diagnostics
                        extras['kind'] = 'logits' if p.student.dim() == 2 else 'map'
                        rows.append((p.key, extras))
        finally:
            model.train(was_training)
            _set_rng_states(states)
        return rows

    @master_only
    def _draw_maps(self, runner, step):
        rows = self.denoised_maps(_unwrap(runner.model))
        image = render_maps(rows, self.reduction, title=f'after {step} iterations')
        runner.visualizer.add_image('diffkd_denoise', image, step=step)

    @master_only
    def _draw_curves(self, runner):
        series = {}
        for key, buffer in runner.message_hub.log_scalars.items():
            if not key.startswith('train/'):
                continue
            entry, _, name = key[len('train/'):].rpartition('.')
            if entry and name in CURVES:
                series.setdefault(name, {})[entry] = np.asarray(buffer.data[0], dtype=float)
        if not series:
            return
        runner.visualizer.add_image('diffkd_curves', render_curves(series), step=runner.iter)


# ---- rendering (pure functions of tensors / arrays) ---------------------------------------------

def _to_rgb(maps, reduction):
    """Three (C, H, W) maps -> three (H, W, 3) float images in [0, 1], jointly scaled."""
    aligned, refined, target = (m.float().cpu() for m in maps)
    c, h, w = target.shape
    if reduction == 'pca':
        flat = target.reshape(c, -1).T                       # (HW, C)
        mean = flat.mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(flat - mean, full_matrices=False)
        basis = vh[:3].T                                     # (C, <=3)
        proj = [((m.reshape(c, -1).T - mean) @ basis) for m in (aligned, refined, target)]
        proj = [torch.nn.functional.pad(p, (0, 3 - p.shape[1])) for p in proj]
        lo = proj[2].quantile(0.01, dim=0)
        hi = proj[2].quantile(0.99, dim=0)
        scale = (hi - lo).clamp_min(1e-6)
        return [((p - lo) / scale).clamp(0, 1).reshape(h, w, 3).numpy() for p in proj]
    from matplotlib import colormaps
    heat = [m.abs().mean(0) for m in (aligned, refined, target)]
    top = max(float(x.quantile(0.99)) for x in heat) or 1.0
    return [colormaps['viridis']((x / top).clamp(0, 1).numpy())[..., :3] for x in heat]


def render_maps(rows, reduction='pca', title=''):
    """Figure with one row per entry: aligned student | denoised | teacher target."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.5 * len(rows) + 0.4), squeeze=False)
    for (key, ex), ax_row in zip(rows, axes):
        aligned, refined, target = ex['aligned'][0], ex['refined'][0], ex['target'][0]
        diag = {k: float(v) for k, v in ex['diagnostics'].items()}
        mse = [float(((m - target) ** 2).mean()) for m in (aligned, refined)]
        labels = [f'{key}: aligned student\nMSE to target {mse[0]:.3g}',
                  f'denoised (gamma {diag["gamma"]:.2f})\nMSE to target {mse[1]:.3g}',
                  'teacher target']
        if target.shape[1:] == (1, 1):  # logits or a 1x1 map: curves over the channels
            grid = ax_row[0].get_gridspec()
            row = list(axes[:, 0]).index(ax_row[0])
            for a in ax_row:
                a.remove()
            ax = fig.add_subplot(grid[row, :])
            for m, label in zip((aligned, refined, target), ('aligned', 'denoised', 'target')):
                ax.plot(m.flatten().float().cpu().numpy(), marker='o', ms=3, label=label)
            logits = ex.get('kind') == 'logits'
            ax.set_title(f'{key}: {"logits" if logits else "1x1 map"} (gamma '
                         f'{diag["gamma"]:.2f}; MSE to target: aligned {mse[0]:.3g}, '
                         f'denoised {mse[1]:.3g})', fontsize=8)
            ax.set_xlabel('class' if logits else 'channel', fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=7)
            continue
        for ax, img, label in zip(ax_row, _to_rgb((aligned, refined, target), reduction),
                                  labels):
            ax.imshow(img, interpolation='nearest')
            ax.set_title(label, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(f'DiffKD, {title} ({reduction})', fontsize=9)
    fig.tight_layout()
    return _figure_to_array(fig)


def render_curves(series, smooth=20):
    """One panel per diagnostic, one line per entry, against the training iteration."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    names = [n for n in CURVES if n in series]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.3), squeeze=False)
    for ax, name in zip(axes[0], names):
        for entry, values in sorted(series[name].items()):
            it = np.arange(1, len(values) + 1)
            line, = ax.plot(it, values, lw=0.6, alpha=0.35)
            if len(values) > smooth:
                kernel = np.ones(smooth) / smooth
                ax.plot(it[smooth - 1:], np.convolve(values, kernel, mode='valid'),
                        color=line.get_color(), lw=1.4, label=entry)
            else:
                line.set_label(entry)
        if name != 'gamma':
            ax.set_yscale('log')
        if name == 'denoise_gain':
            ax.axhline(1.0, color='k', lw=0.8, ls='--')
        ax.set_title(name, fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _figure_to_array(fig)


def _figure_to_array(fig):
    import matplotlib.pyplot as plt
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


# ---- small helpers -----------------------------------------------------------------------------

def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _rng_states():
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda, np.random.get_state(), random.getstate()


def _set_rng_states(states):
    cpu, cuda, numpy_state, python_state = states
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)
    np.random.set_state(numpy_state)
    random.setstate(python_state)
