"""The distiller on tiny real models from mmdet, mmseg and mmpretrain configs (CPU, 32-64 px).

Each task: build the distiller from a config file (``{{_base_.model}}`` student, file teacher),
train through MMEngine's Runner with DiffKD + MSE/FitNets/KD, check the teacher never changes and
the student does, and validate with the task's own metric.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.runner import Runner
from tiny_models import CONFIG_DIR, TASKS, loader, teacher_checkpoint

import mmdiffkd.models  # noqa: F401
from mmdiffkd.models.distillers import Distiller
from mmdiffkd.utils.builder import (infer_scope, load_model_spec,
                                    resolve_config_path)

pytest.importorskip('mmcv.ops', reason='mmdet / mmseg / mmpretrain need mmcv with ops')

EXPECTED = {
    # task: (student task-loss keys, distillation keys, inferred DiffKD channels s/t)
    'retinanet': ({'loss_cls', 'loss_bbox'},
                  {'loss_layer4_distill', 'loss_layer4_diffusion'}
                  | {f'loss_fpn_{i}' for i in range(5)}, (128, 256)),
    'faster_rcnn': ({'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'acc'},
                    {'loss_layer4_distill', 'loss_layer4_diffusion'}
                    | {f'loss_fpn_{i}' for i in range(5)}, (128, 256)),
    'pspnet': ({'decode.loss_ce', 'decode.acc_seg'},
               {'loss_layer4_distill', 'loss_layer4_diffusion', 'loss_logits'}, (128, 256)),
    'resnet': ({'loss_student'}, {'loss_layer4_distill', 'loss_layer4_diffusion', 'loss_layer3',
                          'loss_logits'}, (128, 256)),
}


def load_cfg(task, tmp_path):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, TASKS[task][0]))
    cfg.model.teacher.checkpoint = teacher_checkpoint(cfg, str(tmp_path / 'teacher.pth'))
    cfg.model.teacher.pop('allow_untrained')
    return cfg


def batch(task, n=2):
    data = TASKS[task][1](n=n)
    return dict(inputs=[data[i]['inputs'] for i in range(n)],
                data_samples=[data[i]['data_samples'] for i in range(n)])


@pytest.mark.parametrize('task', list(TASKS))
def test_build_from_config_and_train_step(task, tmp_path):
    cfg = load_cfg(task, tmp_path)
    model = ROOT_MODELS.build(cfg.model)
    assert isinstance(model, Distiller)
    student_keys, distill_keys, (cs, ct) = EXPECTED[task]
    diffkd = model.distill_losses.layer4
    assert (diffkd.student_channels, diffkd.teacher_channels) == (cs, ct)
    assert model.data_preprocessor is model.student.data_preprocessor
    teacher0 = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    student0 = {k: v.clone() for k, v in model.student.state_dict().items()}
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.01)))
    model.train()
    log = model.train_step(batch(task), optim)
    assert student_keys | distill_keys <= set(log), sorted(log)
    assert all(torch.isfinite(v) for v in log.values())
    # the logged total is the sum of every logged loss (mmpretrain's bare 'loss' key renamed)
    parts = sum(v for k, v in log.items() if 'loss' in k and k != 'loss')
    assert torch.allclose(log['loss'], parts), (log['loss'], parts)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher0[k]), k  # BN running stats included: teacher in eval
    assert not torch.equal(model.student.backbone.layer4[0].conv1.weight,
                           student0['backbone.layer4.0.conv1.weight'])
    model.eval()
    preds = model.val_step(batch(task))
    field = {'retinanet': 'pred_instances', 'faster_rcnn': 'pred_instances',
             'pspnet': 'pred_sem_seg', 'resnet': 'pred_label'}[task]
    assert all(field in p for p in preds)


@pytest.mark.parametrize('task', ['resnet', pytest.param('retinanet', marks=pytest.mark.slow),
                                  pytest.param('faster_rcnn', marks=pytest.mark.slow),
                                  pytest.param('pspnet', marks=pytest.mark.slow)])
def test_runner_train_and_validate(task, tmp_path):
    cfg = load_cfg(task, tmp_path)
    _, make_data, metric, _ = TASKS[task]
    runner = Runner(model=cfg.model, work_dir=str(tmp_path / 'work'), experiment_name=task,
                    default_scope=cfg.default_scope,
                    train_dataloader=loader(make_data(n=4)), val_dataloader=loader(make_data(n=2)),
                    val_evaluator=metric,
                    train_cfg=dict(by_epoch=False, max_iters=3, val_interval=3), val_cfg=dict(),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
                    default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3,
                                                       by_epoch=False)),
                    custom_hooks=[dict(type='mmdiffkd.TeacherValHook')],
                    randomness=dict(seed=0))
    model = runner.model
    teacher0 = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    student0 = {k: v.clone() for k, v in model.student.state_dict().items()}
    runner.train()
    assert all(torch.equal(v, teacher0[k]) for k, v in model.teacher.state_dict().items())
    assert any(not torch.equal(v, student0[k]) for k, v in model.student.state_dict().items()
               if v.is_floating_point())
    scalars = set(runner.message_hub.log_scalars)
    assert {f'train/{k}' for k in EXPECTED[task][1]} <= scalars
    metric = {'retinanet': 'coco/bbox_mAP', 'faster_rcnn': 'coco/bbox_mAP', 'pspnet': 'mIoU',
              'resnet': 'accuracy/top1'}[task]
    # the student's task metric, and the teacher's with the same metric under val/teacher/
    assert {f'val/{metric}', f'val/teacher/{metric}'} <= scalars, sorted(scalars)
    saved = torch.load(osp.join(runner.work_dir, 'iter_3.pth'), weights_only=True)
    assert not any(k.startswith('teacher.') for k in saved['state_dict'])
    assert any(k.startswith('distill_losses.layer4.') for k in saved['state_dict'])


def test_scope_of_each_model_is_its_own():
    for task, scope in (('retinanet', 'mmdet'), ('pspnet', 'mmseg'), ('resnet', 'mmpretrain')):
        cfg = Config.fromfile(osp.join(CONFIG_DIR, TASKS[task][0]))
        for role in ('student', 'teacher'):
            model_cfg, file_scope, _ = load_model_spec(cfg.model[role], role)
            assert infer_scope(model_cfg, file_scope, role) == scope
    # a bare model dict with no scope hint is found by searching the known scopes
    assert infer_scope(Config(dict(type='EncoderDecoder')), None, 'student') == 'mmseg'
    assert infer_scope(Config(dict(type='ImageClassifier')), None, 'student') == 'mmpretrain'


def test_cross_repo_teacher_config_resolves():
    path = resolve_config_path('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    assert osp.isfile(path)
    model_cfg, scope, extra = load_model_spec(
        dict(config='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', checkpoint='x.pth'),
        'teacher')
    assert scope == 'mmdet' and model_cfg.type == 'RetinaNet' and extra == {'checkpoint': 'x.pth'}
    with pytest.raises(FileNotFoundError, match='configs/ folder of mmdet'):
        resolve_config_path('mmdet::retinanet/no_such.py')


def test_shared_head_conv_per_level_with_call(tmp_path):
    """The RPN conv runs once per FPN level: call=[...] makes one loss per level."""
    cfg = load_cfg('faster_rcnn', tmp_path)
    cfg.model.distill_losses = dict(
        rpn=dict(loss=dict(type='MSE'), student='rpn_head.rpn_conv', call=[0, 1, 2, 3, 4]))
    model = ROOT_MODELS.build(cfg.model)
    log = model.train_step(batch('faster_rcnn'),
                           build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.0))))
    assert {f'loss_rpn_{i}' for i in range(5)} <= set(log)
    cfg.model.distill_losses.rpn.pop('call')
    with pytest.raises(RuntimeError, match='ran 5 times'):
        ROOT_MODELS.build(cfg.model)


def test_teacher_checkpoint_of_another_architecture(tmp_path):
    """A classifier's checkpoint given to a RetinaNet teacher: the error names the keys."""
    cls_cfg = Config.fromfile(osp.join(CONFIG_DIR, TASKS['resnet'][0]))
    wrong = teacher_checkpoint(cls_cfg, str(tmp_path / 'resnet_teacher.pth'))
    cfg = Config.fromfile(osp.join(CONFIG_DIR, TASKS['retinanet'][0]))
    cfg.model.teacher.checkpoint = wrong
    with pytest.raises(RuntimeError) as err:
        ROOT_MODELS.build(cfg.model)
    msg = str(err.value)
    assert 'bbox_head.retina_cls.weight' in msg or 'neck.' in msg  # missing in the file
    assert 'head.fc.weight' in msg  # unexpected: the classifier's head


def test_nested_index_into_head_outputs(tmp_path):
    """RetinaHead returns (cls_scores per level, bbox_preds per level): a tuple index picks one
    level of one of them, a list of tuples makes one loss per pick."""
    cfg = load_cfg('retinanet', tmp_path)
    cfg.model.distill_losses = dict(
        head=dict(loss=dict(type='MSE'), student='bbox_head', index=[(0, 0), (1, 4)]),
        cls2=dict(loss=dict(type='MSE'), student='bbox_head', index=(0, 2)))
    model = ROOT_MODELS.build(cfg.model)
    # mmdet's tensor mode calls bbox_head.forward directly (no hooks): the teacher runs in
    # predict mode, cut right after its head, so no NMS runs
    assert model.teacher_mode == 'predict'
    data = batch('retinanet')
    log = model.train_step(data,
                           build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.0))))
    assert {'loss_head_0_0', 'loss_head_1_4', 'loss_cls2'} <= set(log)
    assert not any('pred_instances' in s for s in data['data_samples'])
    model.stop_teacher_early = False  # a full predict pass writes results: not into our samples
    model.train_step(data, build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.0))))
    assert not any('pred_instances' in s for s in data['data_samples'])


def test_top_level_data_preprocessor_goes_to_the_student_and_teacher_config(tmp_path):
    """mmpretrain experiments keep mean/std in a top-level ``data_preprocessor`` (no type),
    which MMEngine's Runner injects into ``model``: the student must get it, and a teacher
    given as an experiment config gets its own, as in their own experiments."""
    from mmengine.config import Config

    from mmdiffkd.registry import MODELS
    student_exp = Config.fromfile(osp.join(CONFIG_DIR, 'cls', 'tiny_resnet18.py'))
    student = student_exp.model.copy()
    student.pop('data_preprocessor')
    teacher_exp = Config.fromfile(osp.join(CONFIG_DIR, 'cls', 'tiny_resnet18_wide.py'))
    teacher_exp.data_preprocessor = teacher_exp.model.pop('data_preprocessor')
    teacher_exp.data_preprocessor.pop('type')
    teacher_exp.data_preprocessor.mean = [1.0, 2.0, 3.0]
    model = MODELS.build(dict(
        type='mmdiffkd.Distiller', student=student,
        teacher=dict(config=teacher_exp.to_dict(), allow_untrained=True, checkpoint=None),
        data_preprocessor=dict(num_classes=4, mean=[10.0, 20.0, 30.0], std=[1.0, 2.0, 3.0]),
        dry_run=dict(input_size=(32, 32))))
    assert model.data_preprocessor is model.student.data_preprocessor
    assert model.student.data_preprocessor.mean.flatten().tolist() == [10.0, 20.0, 30.0]
    assert model.teacher.data_preprocessor.mean.flatten().tolist() == [1.0, 2.0, 3.0]
