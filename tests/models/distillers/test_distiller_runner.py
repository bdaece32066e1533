"""The distiller inside MMEngine's Runner (toy model, CPU): training, validation, checkpoints."""
import os.path as osp

import torch
from mmengine.runner import Runner
from tiny_models import toy_loader, toy_model, toy_teacher_checkpoint

import mmdiffkd.models  # noqa: F401


def make_runner(work_dir, teacher_ckpt, max_iters=3, **model_kwargs):
    model = dict(type='mmdiffkd.Distiller', student=toy_model(8),
                 teacher=dict(config=toy_model(16), checkpoint=teacher_ckpt),
                 distill_losses=dict(
                     feat=dict(loss=dict(type='FitNets'), student='stage2', teacher='stage2'),
                     logits=dict(loss=dict(type='KD'), student='fc', weight=0.5)),
                 dry_run=dict(input_size=(16, 16)), **model_kwargs)
    return Runner(model=model, work_dir=str(work_dir), experiment_name='toy',
                  train_dataloader=toy_loader(), val_dataloader=toy_loader(n=4),
                  val_evaluator=dict(type='ToyAccuracy'),
                  train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters),
                  val_cfg=dict(), optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
                  default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=max_iters,
                                                     by_epoch=False),
                                     logger=dict(type='LoggerHook', interval=1)),
                  custom_hooks=[dict(type='mmdiffkd.TeacherValHook')],
                  randomness=dict(seed=0), default_scope='mmengine')


def test_runner_trains_student_not_teacher(tmp_path):
    ckpt = toy_teacher_checkpoint(tmp_path / 'teacher.pth')
    runner = make_runner(tmp_path, ckpt)
    model = runner.model
    teacher0 = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    student0 = {k: v.clone() for k, v in model.student.state_dict().items()}
    regressor0 = model.distill_losses.feat.regressor.weight.clone()
    runner.train()
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher0[k]), f'teacher {k} changed'
    changed = [k for k, v in model.student.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, student0[k])]
    assert 'stem.0.weight' in changed and 'fc.weight' in changed
    assert not torch.equal(regressor0, model.distill_losses.feat.regressor.weight)
    # every loss was logged under its own name, and validation ran with the task metric
    scalars = runner.message_hub.log_scalars
    assert {'train/loss_cls', 'train/loss_feat', 'train/loss_logits'} <= set(scalars)
    assert 'val/accuracy' in scalars
    # TeacherValHook evaluated the teacher with the same metric, under its own prefix
    assert 'val/teacher/accuracy' in scalars
    teacher_acc = scalars['val/teacher/accuracy'].current()
    preds = [model.teacher(model.teacher_inputs(model.data_preprocessor(b, False)['inputs']))
             .argmax(1) for b in runner.val_dataloader]
    labels = [torch.stack([d.gt_label for d in b['data_samples']]) for b in runner.val_dataloader]
    expected = float(sum((p == y).sum() for p, y in zip(preds, labels))) / 4
    assert abs(teacher_acc - expected) < 1e-6
    # the checkpoint holds student and loss weights, no teacher, and loads weights_only
    saved = torch.load(osp.join(runner.work_dir, 'iter_3.pth'), map_location='cpu',
                       weights_only=True)
    keys = set(saved['state_dict'])
    assert 'student.stem.0.weight' in keys and 'distill_losses.feat.regressor.weight' in keys
    assert not any(k.startswith('teacher.') for k in keys)
