"""Export the student of a Runner-trained distiller and load it with the task repo's own API.

mmdet ``init_detector`` + ``inference_detector``, mmseg ``init_model`` + ``inference_model``,
mmpretrain ``get_model`` + ``ImageClassificationInferencer``: each gets only the student's own
config and the exported file, and must predict exactly what the distiller's student predicts.
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from tiny_models import CONFIG_DIR, TASKS, loader, teacher_checkpoint

import mmdiffkd.models  # noqa: F401
from mmdiffkd.engine import export_student

pytest.importorskip('mmcv.ops', reason='mmdet / mmseg / mmpretrain need mmcv with ops')

torch.set_num_threads(1)

# the test pipeline each task's inference API reads from the student's config (types resolve in
# the config's default scope; the APIs look for 'LoadImageFromFile' by its bare name)
PIPELINES = {
    'det': [dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(64, 64), keep_ratio=True),
            dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))],
    'seg': [dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(64, 64), keep_ratio=True),
            dict(type='PackSegInputs')],
    'cls': [dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(32, 32)),
            dict(type='PackInputs')],
}
KIND = {'retinanet': 'det', 'pspnet': 'seg', 'resnet': 'cls'}


def train_and_export(task, tmp_path):
    """One Runner iteration of the task's distillation config, then export its student."""
    distill_cfg, dataset_fn, _, student_cfg = TASKS[task]
    cfg = Config.fromfile(osp.join(CONFIG_DIR, distill_cfg))
    cfg.model.teacher.checkpoint = teacher_checkpoint(cfg, str(tmp_path / 'teacher.pth'))
    cfg.model.teacher.pop('allow_untrained', None)
    dataset = dataset_fn(n=2)
    runner = Runner(
        model=cfg.model, work_dir=str(tmp_path / 'work'),
        train_dataloader=loader(dataset), train_cfg=dict(by_epoch=False, max_iters=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-3, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        default_scope=cfg.default_scope, randomness=dict(seed=0), log_level='WARNING')
    runner.train()
    student = Config.fromfile(osp.join(CONFIG_DIR, student_cfg))
    kind = KIND[task]
    if kind == 'seg':
        student.test_pipeline = PIPELINES[kind]
    elif kind == 'det':  # init_detector builds the test dataset (lazily) for its metainfo
        student.test_dataloader = dict(dataset=dict(
            type='CocoDataset', data_root='', ann_file='', lazy_init=True, test_mode=True,
            metainfo=dict(classes=dataset.metainfo['classes']), pipeline=PIPELINES[kind]))
    else:
        student.test_dataloader = dict(dataset=dict(pipeline=PIPELINES[kind]))
    student_file = str(tmp_path / 'student_config.py')
    student.dump(student_file)
    final = export_student(str(tmp_path / 'work' / 'iter_1.pth'),
                           str(tmp_path / 'release' / f'{task}.pth'), config=student_file)
    distiller = runner.model
    distiller.eval()
    return final, student_file, distiller, dataset.metainfo


def image(size, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    img[size // 4:size // 2, size // 4:3 * size // 4] = 200
    return img


def test_mmdet_init_detector_and_inference(tmp_path):
    from mmdet.apis import inference_detector, init_detector
    final, config, distiller, metainfo = train_and_export('retinanet', tmp_path)
    model = init_detector(config, final, device='cpu')
    assert model.dataset_meta['classes'] == metainfo['classes']
    for k, v in model.state_dict().items():
        assert torch.equal(v, distiller.student.state_dict()[k]), k
    img = image(64)
    result = inference_detector(model, img)
    distiller.student.cfg = model.cfg
    reference = inference_detector(distiller.student, img)
    assert torch.equal(result.pred_instances.bboxes, reference.pred_instances.bboxes)
    assert torch.equal(result.pred_instances.scores, reference.pred_instances.scores)


def test_mmseg_init_model_and_inference(tmp_path):
    from mmseg.apis import inference_model, init_model
    final, config, distiller, metainfo = train_and_export('pspnet', tmp_path)
    model = init_model(config, final, device='cpu')
    assert model.dataset_meta['classes'] == metainfo['classes']
    assert [list(p) for p in model.dataset_meta['palette']] == metainfo['palette']
    img = image(64)
    result = inference_model(model, img)
    distiller.student.cfg = model.cfg
    reference = inference_model(distiller.student, img)
    assert result.pred_sem_seg.data.shape == (1, 64, 64)
    assert torch.equal(result.pred_sem_seg.data, reference.pred_sem_seg.data)
    assert torch.allclose(result.seg_logits.data, reference.seg_logits.data)


def test_mmpretrain_get_model_and_inferencer(tmp_path):
    from mmpretrain import ImageClassificationInferencer, get_model
    final, config, distiller, metainfo = train_and_export('resnet', tmp_path)
    model = get_model(config, pretrained=final, device='cpu')
    assert model._dataset_meta['classes'] == metainfo['classes']  # where get_model keeps it
    for k, v in model.state_dict().items():
        assert torch.equal(v, distiller.student.state_dict()[k]), k
    inferencer = ImageClassificationInferencer(model=config, pretrained=final, device='cpu')
    img = image(32)
    out = inferencer(img)[0]
    batch = dict(inputs=[torch.from_numpy(img).permute(2, 0, 1).contiguous()],
                 data_samples=None)
    with torch.no_grad():
        scores = distiller.student.test_step(copy.deepcopy(batch))[0].pred_score
    assert out['pred_label'] == int(scores.argmax())
    assert out['pred_class'] in metainfo['classes']
    assert np.allclose(out['pred_scores'], scores.numpy(), atol=1e-5)
