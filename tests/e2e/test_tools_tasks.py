"""The command-line flow on a real mmdet model, all from config files: train.py, train.py
--resume, test.py, export_student.py, then ``mmdet.apis.init_detector`` + ``inference_detector``.

The distillation config is tests/data/configs/distill/retinanet_r18w_to_r18_diffkd.py (tiny RetinaNet
student and teacher, DiffKD on ``backbone.layer4`` + MSE on every FPN level) with dataloaders
added in an experiment file, as a user's config would inherit them.
"""
import os.path as osp
import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers import load_tool
from mmengine.config import Config
from tiny_models import CONFIG_DIR, teacher_checkpoint

import mmdiffkd  # noqa: F401  (torch.load of MMEngine checkpoints: weights_only, the allow-list)

pytest.importorskip('mmcv.ops', reason='mmdet needs mmcv with ops')

torch.set_num_threads(1)

DATA_MODULE = '''
import torch
from mmengine.registry import DATASETS
from tiny_models import det_dataset


@DATASETS.register_module(force=True)
class ToolsTinyDetDataset(torch.utils.data.Dataset):
    """tiny_models.det_dataset (64x64 images with boxes), buildable from a config."""

    def __init__(self, n=4, seed=0):
        self.data = det_dataset(n=n, seed=seed)
        self.metainfo = self.data.metainfo

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]
'''

EXPERIMENT = '''
_base_ = {base!r}
custom_imports = dict(imports=['tiny_models', 'tools_tiny_det'], allow_failed_imports=False)
model = dict(teacher=dict(checkpoint={teacher!r}, allow_untrained=False))
loader = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
              collate_fn=dict(type='pseudo_collate'))
train_dataloader = dict(dataset=dict(type='ToolsTinyDetDataset', n=4), **loader)
val_dataloader = dict(dataset=dict(type='ToolsTinyDetDataset', n=2, seed=1), **loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', metric='bbox', format_only=False)
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=False, max_iters=2, val_interval=2)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
custom_hooks = [dict(type='mmdiffkd.StepSeedHook')]
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''

STUDENT = '''
_base_ = {base!r}
test_dataloader = dict(dataset=dict(
    type='CocoDataset', data_root='', ann_file='', test_mode=True,
    metainfo=dict(classes=('c0', 'c1', 'c2')),
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='Resize', scale=(64, 64), keep_ratio=True),
              dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                                    'img_shape', 'scale_factor'))]))
'''


@pytest.mark.slow  # about 30-60 s on 2 shared cores: two RetinaNets trained, tested, exported
def test_cli_train_test_export_and_init_detector(tmp_path, capsys):
    sys.path.insert(0, str(tmp_path))
    try:
        (tmp_path / 'tools_tiny_det.py').write_text(DATA_MODULE)
        distill = osp.join(CONFIG_DIR, 'distill', 'retinanet_r18w_to_r18_diffkd.py')
        teacher = teacher_checkpoint(Config.fromfile(distill), str(tmp_path / 'teacher.pth'))
        config = tmp_path / 'experiment.py'
        config.write_text(textwrap.dedent(EXPERIMENT.format(base=distill, teacher=teacher)))
        student_config = tmp_path / 'student.py'
        student_config.write_text(STUDENT.format(
            base=osp.join(CONFIG_DIR, 'det', 'tiny_retinanet_r18.py')))
        work = tmp_path / 'work'

        load_tool('train').main([str(config), '--work-dir', str(work)])
        ckpt = work / 'iter_2.pth'
        saved = torch.load(ckpt, weights_only=True)
        assert saved['meta']['dataset_meta']['classes'] == ('c0', 'c1', 'c2')
        assert not any(k.startswith('teacher.') for k in saved['state_dict'])

        # resume (weights_only, MMEngine's allow-list) for one more iteration
        load_tool('train').main([str(config), '--work-dir', str(work), '--resume',
                                 '--cfg-options', 'train_cfg.max_iters=3',
                                 'default_hooks.checkpoint.interval=1'])
        assert torch.load(work / 'iter_3.pth', weights_only=True)['meta']['iter'] == 3

        # an untrained tiny RetinaNet scores below mmdet's 0.05: keep every box for the metric
        metrics = load_tool('test').main([str(config), str(ckpt),
                                          '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                                          'model.student.test_cfg.score_thr=0.0'])
        assert 0 <= metrics['coco/bbox_mAP'] <= 1

        capsys.readouterr()
        final = load_tool('export_student').main(
            [str(ckpt), str(tmp_path / 'release' / 'retinanet_kd.pth'),
             '--config', str(student_config)])
        assert capsys.readouterr().out.strip() == final

        from mmdet.apis import inference_detector, init_detector
        model = init_detector(str(student_config), final, device='cpu')
        assert model.dataset_meta['classes'] == ('c0', 'c1', 'c2')
        img = np.full((64, 64, 3), 40, dtype=np.uint8)
        img[10:40, 20:50] = 200
        result = inference_detector(model, img)
        assert result.pred_instances.bboxes.shape[-1] == 4
        student = {k[len('student.'):]: v for k, v in saved['state_dict'].items()
                   if k.startswith('student.')}
        for k, v in model.state_dict().items():
            assert torch.equal(v, student[k]), k
    finally:
        sys.path.remove(str(tmp_path))
