"""Resume: N steps, stop, resume from the checkpoint, N more == 2N uninterrupted steps.

The distiller (toy student, frozen toy teacher from its own file, DiffKD + MSE) trains through
MMEngine's Runner with AdamW (stateful) and two LR schedulers. The teacher is not in the
checkpoint; the resumed run reloads it from its file.
"""
import copy

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from tiny_models import toy_model, toy_teacher_checkpoint

import mmdiffkd.models  # noqa: F401
from mmdiffkd.registry import HOOKS

N = 3


class ToyImages(torch.utils.data.Dataset):
    """Eight fixed uint8 images with labels; deterministic, no augmentation."""
    metainfo = dict(classes=('a', 'b', 'c', 'd'))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(100 + i)
        image = torch.randint(0, 256, (3, 16, 16), generator=g, dtype=torch.uint8)
        return dict(inputs=image, data_samples=BaseDataElement(gt_label=torch.tensor(i % 4)))


@HOOKS.register_module(force=True)
class RecordLossHook(Hook):
    """Keeps every step's logged losses, for comparing runs."""

    def __init__(self):
        self.losses = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[runner.iter + 1] = {k: v.item() for k, v in outputs.items()}


@HOOKS.register_module(force=True)
class StopAtHook(Hook):
    """Stops the loop after ``at`` steps, as a crash or a pre-empted job would."""

    priority = 'LOWEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 >= self.at:
            runner.train_loop.stop_training = True


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    return toy_teacher_checkpoint(tmp_path_factory.mktemp('teacher') / 'teacher.pth')


def make_runner(work_dir, teacher_ckpt, stop_at=None, resume=False, seed_hook=True):
    model = dict(
        type='mmdiffkd.Distiller', student=toy_model(8),
        teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
        distill_losses=dict(
            feat=dict(loss=dict(type='DiffKD', inference_steps=2), student='stage2',
                      teacher='stage2', weight=1.0),
            logits=dict(loss=dict(type='MSE'), student='fc', teacher='fc', weight=0.5)),
        dry_run=dict(input_size=(16, 16)))
    hooks = [dict(type='RecordLossHook')]
    if seed_hook:
        hooks.append(dict(type='mmdiffkd.StepSeedHook'))
    if stop_at:
        hooks.append(dict(type='StopAtHook', at=stop_at))
    return Runner(
        model=model, work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyImages(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=1e-2)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.25, by_epoch=False, end=2),
                         dict(type='MultiStepLR', milestones=[4], gamma=0.1, by_epoch=False)],
        train_cfg=dict(by_epoch=False, max_iters=2 * N),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=N, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks, resume=resume, randomness=dict(seed=7),
        default_scope='mmdiffkd', log_level='WARNING')


def record_of(runner):
    return next(h for h in runner.hooks if isinstance(h, RecordLossHook)).losses


def run_pair(tmp_path, teacher_ckpt, seed_hook):
    full = make_runner(tmp_path / 'full', teacher_ckpt, seed_hook=seed_hook)
    full.train()
    first = make_runner(tmp_path / 'split', teacher_ckpt, stop_at=N, seed_hook=seed_hook)
    first.train()
    assert sorted(record_of(first)) == list(range(1, N + 1))
    resumed = make_runner(tmp_path / 'split', teacher_ckpt, resume=True, seed_hook=seed_hook)
    resumed.train()
    return full, first, resumed


def test_resume_equals_uninterrupted_run(tmp_path, teacher_ckpt):
    full, first, resumed = run_pair(tmp_path, teacher_ckpt, seed_hook=True)
    ckpt = torch.load(tmp_path / 'split' / f'iter_{N}.pth', weights_only=True)
    keys = ckpt['state_dict'].keys()
    assert not any(k.startswith('teacher.') for k in keys)
    assert any(k.startswith('distill_losses.feat.') for k in keys)  # DiffKD's own modules
    assert ckpt['optimizer']['state'] and len(ckpt['param_schedulers']) == 2

    a, b = record_of(full), record_of(resumed)
    assert sorted(b) == list(range(N + 1, 2 * N + 1))  # resumed at step N+1, not from 0
    assert set(a[N + 1]) >= {'loss_cls', 'loss_feat_distill', 'loss_feat_diffusion',
                             'loss_logits'}
    for step in b:
        for key in a[step]:
            assert a[step][key] == pytest.approx(b[step][key], rel=1e-5, abs=1e-7), (step, key)
    for step in range(1, N + 1):  # the first half is the same run as the full one
        assert record_of(first)[step] == pytest.approx(a[step], rel=1e-6)

    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.allclose(sa[k].float(), sb[k].float(), rtol=1e-5, atol=1e-6), k
    # optimizer state and learning rate continue; the teacher is its file, never trained
    lr_a = full.optim_wrapper.get_lr()['lr'][0]
    assert lr_a == pytest.approx(resumed.optim_wrapper.get_lr()['lr'][0])
    assert lr_a == pytest.approx(1e-3)  # after MultiStepLR's milestone 4: 1e-2 * 0.1
    saved = torch.load(teacher_ckpt, weights_only=True)['state_dict']
    for runner in (full, resumed):
        for k, v in runner.model.teacher.state_dict().items():
            assert torch.equal(v, saved[k]), k
    # the student did learn
    init = torch.load(tmp_path / 'split' / f'iter_{N}.pth', weights_only=True)['state_dict']
    assert not torch.equal(init['student.fc.weight'], sb['student.fc.weight'])


def test_without_step_seeding_resume_drifts(tmp_path, teacher_ckpt):
    """The control: MMEngine alone does not restore random draws (dropout, DiffKD noise)."""
    full, _, resumed = run_pair(tmp_path, teacher_ckpt, seed_hook=False)
    a, b = record_of(full), record_of(resumed)
    drift = max(abs(a[s]['loss_feat_diffusion'] - b[s]['loss_feat_diffusion']) for s in b)
    assert drift > 1e-4


def test_step_seed_is_spread_and_rank_aware():
    from mmdiffkd.engine import step_seed
    seeds = {step_seed(0, i) for i in range(1000)}
    assert len(seeds) == 1000
    assert step_seed(0, 5, rank=0) != step_seed(0, 5, rank=1)
    assert step_seed(3, 5) == step_seed(3, 5) and step_seed(3, 5) != step_seed(4, 5)
    assert all(0 <= s < 2**31 for s in seeds)


def test_resume_refuses_planted_checkpoint(tmp_path, teacher_ckpt):
    """--resume path: Runner.resume goes through the weights_only loader."""
    marker = tmp_path / 'pwned'

    class Plant:

        def __reduce__(self):
            return (open, (str(marker), 'w'))

    runner = make_runner(tmp_path / 'evil', teacher_ckpt)
    state = copy.deepcopy(runner.model.state_dict())
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': state, 'meta': {'iter': 1, 'epoch': 0, 'x': Plant()}}, path)
    from mmdiffkd.utils import UnsafeCheckpointError
    with pytest.raises(UnsafeCheckpointError):
        runner.resume(str(path))
    assert not marker.exists()
