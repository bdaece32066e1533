"""A NaN / inf loss stops training (or skips the step) naming the loss key, the iteration and
the last checkpoint; a skipped step changes neither the weights nor the optimizer state."""
import copy
import logging

import pytest
import torch
import torch.nn as nn
from fault_helpers import FlakyMSE  # noqa: F401  (registers the flaky loss)
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from tiny_models import toy_loader, toy_model, toy_teacher_checkpoint

from mmdiffkd.engine import (FiniteLossOptimWrapper, NonFiniteLossError, NonFiniteLossHook,
                             use_safe_training)
from mmdiffkd.registry import HOOKS


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    return toy_teacher_checkpoint(tmp_path_factory.mktemp('teacher') / 'teacher.pth')


@HOOKS.register_module(force=True)
class SnapshotHook(Hook):
    """Weights and optimizer state around iteration ``at`` (1-based)."""

    priority = 'LOWEST'

    def __init__(self, at):
        self.at, self.before, self.after = at, None, None

    @staticmethod
    def _state(runner):
        return copy.deepcopy((runner.model.state_dict(),
                              runner.optim_wrapper.optimizer.state_dict()))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            self.before = self._state(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            self.after = self._state(runner)


def make_runner(work_dir, teacher_ckpt, bad_iters=(3, ), bad=float('nan'), action='stop',
                guarded=True, iters=6, snapshot_at=None, **hook_args):
    hooks = [dict(type='mmdiffkd.StepSeedHook')]
    if action is not None:
        hooks.append(dict(type='mmdiffkd.NonFiniteLossHook', action=action, **hook_args))
    if snapshot_at:
        hooks.append(dict(type='SnapshotHook', at=snapshot_at))
    return Runner(
        model=dict(type='mmdiffkd.Distiller', student=toy_model(8),
                   teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
                   distill_losses=dict(flaky=dict(
                       loss=dict(type='FlakyMSE', bad_iters=bad_iters, bad=bad),
                       student='fc', teacher='fc'))),
        work_dir=str(work_dir), train_dataloader=toy_loader(),
        optim_wrapper=dict(type='mmdiffkd.FiniteLossOptimWrapper' if guarded else
                           'OptimWrapper',
                           optimizer=dict(type='AdamW', lr=1e-2, weight_decay=1e-2)),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        default_hooks=dict(checkpoint=dict(type='mmdiffkd.AtomicCheckpointHook', interval=2,
                                           by_epoch=False)),
        custom_hooks=hooks, randomness=dict(seed=0), default_scope='mmdiffkd',
        log_level='WARNING')


def test_stop_names_the_loss_the_iteration_and_the_last_checkpoint(tmp_path, teacher_ckpt):
    runner = make_runner(tmp_path, teacher_ckpt)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    message = str(info.value)
    assert 'Non-finite loss at iteration 3/6: loss_flaky=nan' in message
    assert 'loss_cls' not in message  # only the culprit is named
    assert f'the last checkpoint is {tmp_path / "iter_2.pth"}' in message
    assert '--on-nonfinite skip' in message
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_2.pth']
    # the step was not applied: the weights in memory are still those of iteration 2
    saved = torch.load(tmp_path / 'iter_2.pth', weights_only=True)['state_dict']
    for k, v in runner.model.state_dict().items():
        if not k.startswith('teacher.'):
            assert torch.equal(v, saved[k]), k


def test_inf_is_named_too(tmp_path, teacher_ckpt):
    with pytest.raises(NonFiniteLossError, match=r'iteration 1/6: loss_flaky=inf.*no '
                                                 r'checkpoint was written yet'):
        make_runner(tmp_path, teacher_ckpt, bad_iters=(1, ), bad=float('inf')).train()


def test_skip_leaves_weights_and_optimizer_untouched(tmp_path, teacher_ckpt):
    runner = make_runner(tmp_path, teacher_ckpt, action='skip', snapshot_at=3)
    logger = MMLogger.get_current_instance()
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        runner.train()
    finally:
        logger.removeHandler(handler)
    assert runner.iter == 6  # went on
    snap = next(h for h in runner.hooks if isinstance(h, SnapshotHook))
    (w0, o0), (w1, o1) = snap.before, snap.after
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    for i, state in o0['state'].items():  # AdamW: step count, both moments, no weight decay
        for name, value in state.items():
            assert torch.equal(value, o1['state'][i][name]), (i, name)
    assert runner.optim_wrapper.optimizer.state_dict()['state'][0]['step'].item() == 5
    assert runner.optim_wrapper.skipped_updates == 1
    warning = [m for m in messages if 'Non-finite loss' in m]
    assert len(warning) == 1 and 'iteration 3/6: loss_flaky=nan' in warning[0]
    assert 'Skipped this step' in warning[0] and 'iter_2.pth' in warning[0]
    final = runner.model.state_dict()
    assert all(torch.isfinite(v).all() for k, v in final.items() if v.is_floating_point())


def test_without_the_guard_nan_reaches_the_weights(tmp_path, teacher_ckpt):
    """The control: MMEngine's OptimWrapper steps on the NaN loss."""
    runner = make_runner(tmp_path, teacher_ckpt, action=None, guarded=False, iters=3)
    runner.train()
    assert torch.isnan(runner.model.student.fc.weight).any()


def test_too_many_consecutive_skips_stop(tmp_path, teacher_ckpt):
    with pytest.raises(NonFiniteLossError, match='3 consecutive steps had a non-finite loss'):
        make_runner(tmp_path, teacher_ckpt, bad_iters=(2, 3, 4), action='skip',
                    max_consecutive_skips=3).train()


def test_skip_needs_the_guarded_wrapper(tmp_path, teacher_ckpt):
    with pytest.raises(ValueError, match='FiniteLossOptimWrapper'):
        make_runner(tmp_path, teacher_ckpt, action='skip', guarded=False).train()


def test_stop_without_the_guard_still_keeps_nan_out_of_checkpoints(tmp_path, teacher_ckpt):
    with pytest.raises(NonFiniteLossError, match='already applied this step'):
        make_runner(tmp_path, teacher_ckpt, guarded=False, bad_iters=(2, )).train()
    assert not list(tmp_path.glob('*.pth'))  # iteration 2's checkpoint was not written


def test_checkpoint_with_nan_weights_is_refused(tmp_path):
    hook = NonFiniteLossHook()

    class FakeRunner:
        iter = 4
        work_dir = str(tmp_path)

    (tmp_path / 'last_checkpoint').write_text('/x/iter_2.pth')
    sd = {'a.weight': torch.ones(2), 'b.weight': torch.tensor([1.0, float('nan')]),
          'c.inf_mask': torch.tensor([float('-inf')])}  # inf buffers are legitimate
    with pytest.raises(NonFiniteLossError, match=r'iteration 5: 1 weight\(s\) hold NaN '
                                                 r'\(b.weight\).*is /x/iter_2.pth'):
        hook.before_save_checkpoint(FakeRunner(), {'state_dict': sd})
    sd['b.weight'] = torch.ones(2)
    hook.before_save_checkpoint(FakeRunner(), {'state_dict': sd})


# ---- the optim wrapper alone ----------------------------------------------------------------

def _sgd_wrapper(cls, accumulative_counts=1):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    return model, cls(optimizer=optim, accumulative_counts=accumulative_counts)


def _loss(model, bad=False):
    out = model(torch.ones(1, 3)).sum()
    return out * float('nan') if bad else out


def test_wrapper_skips_backward_and_step():
    model, wrapper = _sgd_wrapper(FiniteLossOptimWrapper)
    wrapper.update_params(_loss(model))  # a real step: momentum buffers exist
    before = copy.deepcopy((model.state_dict(), wrapper.optimizer.state_dict()))
    wrapper.update_params(_loss(model, bad=True))
    assert wrapper.last_loss_finite is False and wrapper.skipped_updates == 1
    assert all(p.grad is None for p in model.parameters())
    after = (model.state_dict(), wrapper.optimizer.state_dict())
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k])
    for i in before[1]['state']:
        assert torch.equal(before[1]['state'][i]['momentum_buffer'],
                           after[1]['state'][i]['momentum_buffer'])
    wrapper.update_params(_loss(model))
    assert wrapper.last_loss_finite is True
    assert not torch.equal(before[0]['weight'], model.weight)
    # the control: MMEngine's wrapper makes the weights NaN
    model, plain = _sgd_wrapper(OptimWrapper)
    plain.update_params(_loss(model, bad=True))
    assert torch.isnan(model.weight).all()


def test_wrapper_puts_back_buffers_a_nan_forward_changed():
    """A NaN batch poisons BatchNorm's running statistics in the forward, before any loss."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    wrapper = FiniteLossOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    before = copy.deepcopy(model.state_dict())
    with wrapper.optim_context(model):
        loss = model(torch.full((2, 3), float('nan'))).sum()
    assert torch.isnan(model[1].running_mean).all()
    wrapper.update_params(loss)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # running stats and num_batches_tracked


def test_wrapper_drops_the_accumulation_window():
    model, wrapper = _sgd_wrapper(FiniteLossOptimWrapper, accumulative_counts=2)
    start = model.weight.detach().clone()
    wrapper.update_params(_loss(model, bad=True))  # micro-batch 1 of window 1
    wrapper.update_params(_loss(model))  # micro-batch 2: the window is dropped
    assert torch.equal(model.weight, start)
    assert all(p.grad is None for p in model.parameters())
    wrapper.update_params(_loss(model))  # window 2 steps normally
    wrapper.update_params(_loss(model))
    assert not torch.equal(model.weight, start) and torch.isfinite(model.weight).all()


# ---- what tools/train.py turns on -----------------------------------------------------------

def test_use_safe_training_wires_wrapper_and_hook():
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))))
    use_safe_training(cfg)
    assert cfg.optim_wrapper.type == 'mmdiffkd.FiniteLossOptimWrapper'
    assert cfg.custom_hooks == [dict(type='mmdiffkd.NonFiniteLossHook', action='stop')]
    amp = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', optimizer=dict(type='SGD')),
                      custom_hooks=[dict(type='mmdiffkd.NonFiniteLossHook', action='stop')]))
    use_safe_training(amp, 'skip')
    assert amp.optim_wrapper.type == 'mmdiffkd.FiniteLossAmpOptimWrapper'
    assert amp.custom_hooks == [dict(type='mmdiffkd.NonFiniteLossHook', action='skip')]
    custom = Config(dict(optim_wrapper=dict(type='MyWrapper', optimizer=dict(type='SGD'))))
    use_safe_training(custom)  # stop works after the fact
    assert custom.optim_wrapper.type == 'MyWrapper'
    with pytest.raises(ValueError, match="--on-nonfinite skip needs.*'MyWrapper'"):
        use_safe_training(custom, 'skip')
    with pytest.raises(ValueError, match="valid: \\('stop', 'skip'\\)"):
        use_safe_training(cfg, 'ignore')
