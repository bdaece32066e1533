"""Stop, or skip the step, when a training loss turns NaN or inf, and say which loss it was.

Where the check runs. MMEngine's ``BaseModel.train_step`` (and
``MMDistributedDataParallel.train_step``) compute the losses, sum every ``*loss*`` entry in
``parse_losses`` and pass the total to ``optim_wrapper.update_params(loss)``, which runs
backward, ``optimizer.step()`` and ``zero_grad()``. :class:`FiniteLossOptimWrapper` (and its
AMP twin) checks the total there, *before* backward: a non-finite total gets no backward and
no optimizer step, so the weights, the momentum and the weight decay are exactly as before the
step; the model's buffers (BatchNorm running statistics), copied when the step began, are put
back too. Under DDP every rank's flag is all-reduced (minimum of "is finite") first, so all ranks
skip the same step together: a rank that skipped backward alone would leave the others
waiting in DDP's gradient all-reduce forever. With gradient accumulation the whole window
that contains a non-finite micro-batch is dropped (its gradients were never all-reduced).

Cost: one host sync per step to read the flag (``bool(...)``; MMEngine's logging already reads
every loss value each step), a device-side copy of the buffers per step
(``restore_buffers=False`` turns it off) and, under DDP, one all-reduce of a single number.

:class:`NonFiniteLossHook` then reads that step's log values (the distiller logs every
distillation loss under its own key, e.g. ``loss_fpn_distill``), and with ``action='stop'``
(default) raises :class:`NonFiniteLossError` naming the non-finite keys (and their ranks), the
iteration and the last checkpoint; with ``action='skip'`` it logs the same as a warning and
training goes on (up to ``max_consecutive_skips`` skipped steps in a row). It also refuses to
write a checkpoint whose weights hold NaN, so the last checkpoint is always one to resume from.

``tools/train.py`` turns both on without config changes (``--on-nonfinite stop|skip``).
"""
import logging
import math
import os.path as osp
from contextlib import contextmanager

import torch
from mmengine.dist import all_gather_object, all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmdiffkd.registry import HOOKS, OPTIM_WRAPPERS
from mmdiffkd.utils.integrity import LAST_CHECKPOINT

ACTIONS = ('stop', 'skip')


class NonFiniteLossError(FloatingPointError):
    """A training loss (or a weight about to be checkpointed) is NaN or inf."""


def finite_on_all_ranks(value):
    """``True`` when ``value`` is finite on every rank (one all-reduce under DDP)."""
    if torch.is_tensor(value):
        flag = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    else:
        flag = torch.tensor([float(math.isfinite(float(value)))])
    if get_world_size() > 1:
        all_reduce(flag, op='min')
    return bool(flag.item())


def _is_finite(value):
    if torch.is_tensor(value):
        return bool(torch.isfinite(value.detach()).all())
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number: nothing to check


def last_complete_checkpoint(runner):
    """The checkpoint ``work_dir/last_checkpoint`` names (written only once that checkpoint is
    complete), else the one this run resumed from, else ``None``."""
    pointer = osp.join(runner.work_dir, LAST_CHECKPOINT)
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8') as f:
            named = f.read().strip()
        if named:
            return named
    if getattr(runner, '_resume', False) and getattr(runner, '_load_from', None):
        return runner._load_from
    return None


def _value_text(value):
    if torch.is_tensor(value):
        value = value.detach().float().mean().item() if value.numel() else float('nan')
    return str(value)


class FiniteLossMixin:
    """``update_params`` that skips backward and the optimizer step for a non-finite loss.

    Args:
        restore_buffers (bool): copy the model's buffers (BatchNorm running statistics ...)
            when the step starts (``optim_context``, before the forward) and put them back
            when the step is skipped, so a batch that made the forward itself non-finite
            leaves no trace either. Costs a device-side copy of the buffers per step.
    """

    def __init__(self, *args, restore_buffers=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.restore_buffers = restore_buffers
        self.last_loss_finite = None  # set by each update_params; read by NonFiniteLossHook
        self.skipped_updates = 0
        self._drop_window = False
        self._saved_buffers = None

    @contextmanager
    def optim_context(self, model):
        if self.restore_buffers:
            self._saved_buffers = [(b, b.detach().clone()) for b in model.buffers()]
        with super().optim_context(model):
            yield

    def update_params(self, loss, step_kwargs=None, zero_kwargs=None):
        saved, self._saved_buffers = self._saved_buffers, None
        self.last_loss_finite = finite_on_all_ranks(loss)
        if not self.last_loss_finite:
            self.skipped_updates += 1
            self._drop_window = True
            with torch.no_grad():
                for buffer, value in saved or ():
                    buffer.copy_(value)
        if not self._drop_window:
            return super().update_params(loss, step_kwargs=step_kwargs,
                                         zero_kwargs=zero_kwargs)
        # counted as a micro-batch (the accumulation schedule is unchanged), not back-propagated
        self._inner_count += 1
        if self.should_update():
            self.zero_grad(**(zero_kwargs or {}))
            self._drop_window = False
        return None


@OPTIM_WRAPPERS.register_module()
class FiniteLossOptimWrapper(FiniteLossMixin, OptimWrapper):
    """MMEngine's ``OptimWrapper`` (same arguments) that never steps on a NaN / inf loss."""


@OPTIM_WRAPPERS.register_module()
class FiniteLossAmpOptimWrapper(FiniteLossMixin, AmpOptimWrapper):
    """MMEngine's ``AmpOptimWrapper`` (same arguments) that never steps on a NaN / inf loss."""


def finite_wrapper_type(optim_type):
    """The guarded wrapper type for an optim wrapper config's ``type``, or ``None``."""
    name = optim_type if isinstance(optim_type, str) else getattr(optim_type, '__name__', '')
    name = name.split('.')[-1]
    if name in ('OptimWrapper', 'FiniteLossOptimWrapper'):
        return 'mmdiffkd.FiniteLossOptimWrapper'
    if name in ('AmpOptimWrapper', 'FiniteLossAmpOptimWrapper'):
        return 'mmdiffkd.FiniteLossAmpOptimWrapper'
    return None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training (or skip the step) on a NaN / inf loss, naming it; see module doc.

    Args:
        action (str): ``'stop'`` raises :class:`NonFiniteLossError`; ``'skip'`` logs a warning
            and goes on (needs the optim wrapper to be a ``FiniteLoss*OptimWrapper``, which
            skipped the update before it happened).
        max_consecutive_skips (int | None): with ``'skip'``, stop anyway after this many
            skipped steps in a row (a run that only skips learns nothing). ``None``: never.
    """

    priority = 'ABOVE_NORMAL'  # after_train_iter before the checkpoint and logger hooks

    def __init__(self, action='stop', max_consecutive_skips=10):
        if action not in ACTIONS:
            raise ValueError(f'NonFiniteLossHook: action={action!r}; valid: {ACTIONS}.')
        if max_consecutive_skips is not None and max_consecutive_skips < 1:
            raise ValueError('NonFiniteLossHook: max_consecutive_skips must be >= 1 or None, '
                             f'got {max_consecutive_skips!r}.')
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self.consecutive_skips = 0
        self.skipped_iters = []
        self._wrapper = None

    def before_train(self, runner):
        wrapper = runner.optim_wrapper
        self._wrapper = wrapper if isinstance(wrapper, FiniteLossMixin) else None
        if self.action == 'skip' and self._wrapper is None:
            raise ValueError(
                f"NonFiniteLossHook(action='skip') needs an optim wrapper that skips the update "
                f'itself, before the optimizer step; this run has {type(wrapper).__name__}. Set '
                "optim_wrapper.type='mmdiffkd.FiniteLossOptimWrapper' (or "
                "'mmdiffkd.FiniteLossAmpOptimWrapper'; tools/train.py does it for OptimWrapper "
                "and AmpOptimWrapper), or use action='stop'.")

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self._wrapper is not None:
            self._wrapper.last_loss_finite = None

    def _step_was_finite(self, outputs):
        if self._wrapper is not None and self._wrapper.last_loss_finite is not None:
            return self._wrapper.last_loss_finite  # already agreed by every rank
        losses = [v for k, v in (outputs or {}).items() if 'loss' in k]
        local = all(_is_finite(v) for v in losses)
        return finite_on_all_ranks(torch.tensor(1.0 if local else float('nan')))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self._step_was_finite(outputs):
            self.consecutive_skips = 0
            return
        bad = {k: _value_text(v) for k, v in (outputs or {}).items() if not _is_finite(v)}
        found = [(rank, k, v) for rank, keys in enumerate(all_gather_object(bad))
                 for k, v in keys.items()] if get_world_size() > 1 else [
                     (get_rank(), k, v) for k, v in bad.items()]
        # name the summands; the total 'loss' only when no summand is non-finite
        summands = [f for f in found if f[1] != 'loss'] or found
        ranks = get_world_size() > 1
        keys = ', '.join(f'{k}={v}' + (f' (rank {r})' if ranks else '') for r, k, v in summands)
        where = f'iteration {runner.iter + 1}/{runner.max_iters}'
        last = last_complete_checkpoint(runner)
        last_text = (f'the last checkpoint is {last}' if last else
                     'no checkpoint was written yet in this run')
        if self.action == 'skip':
            self.consecutive_skips += 1
            self.skipped_iters.append(runner.iter + 1)
            limit = self.max_consecutive_skips
            if limit is None or self.consecutive_skips < limit:
                print_log(f'Non-finite loss at {where}: {keys or "loss"}. Skipped this step (no '
                          'backward, no optimizer update); '
                          f'{self.consecutive_skips} skipped in a row, '
                          f'{len(self.skipped_iters)} in this run; {last_text}.',
                          logger='current', level=logging.WARNING)
                return
            what = (f'{self.consecutive_skips} consecutive steps had a non-finite loss, the '
                    f'last at {where}: {keys or "loss"}')
        else:
            what = f'Non-finite loss at {where}: {keys or "loss"}'
        if self._wrapper is not None:
            state = ('The optimizer step of this iteration was skipped, so the weights '
                     + ('(and the buffers, e.g. BatchNorm statistics) '
                        if self._wrapper.restore_buffers else '')
                     + 'were not updated with it')
        else:
            state = (f'The optimizer ({type(runner.optim_wrapper).__name__}) already applied '
                     'this step, so the weights in memory may be non-finite; no checkpoint was '
                     'written with them')
        raise NonFiniteLossError(
            f'{what}. Training stopped. {state}; {last_text}. Per-loss values are in the log '
            '(one key per loss). Resume from the last checkpoint with `tools/train.py CONFIG '
            '--resume` after lowering the learning rate or the weight of the named loss, or '
            'checking the data; `--on-nonfinite skip` skips such steps instead.')

    def before_save_checkpoint(self, runner, checkpoint):
        state_dict = checkpoint.get('state_dict') or {}
        bad = [k for k, v in state_dict.items()
               if torch.is_tensor(v) and v.is_floating_point() and bool(torch.isnan(v).any())]
        if bad:
            last = last_complete_checkpoint(runner)
            raise NonFiniteLossError(
                f'Refusing to write a checkpoint at iteration {runner.iter + 1}: {len(bad)} '
                f'weight(s) hold NaN ({", ".join(bad[:10])}). The losses were finite, so a '
                'gradient or an update produced them (e.g. a division by zero in a backward, '
                f'or too large a learning rate). The last complete checkpoint is {last}.')
