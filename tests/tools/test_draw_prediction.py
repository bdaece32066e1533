"""tools/draw_prediction.py: an exported student (tools/export_student.py) loaded from its own
config, run on an image file, and drawn by the task's visualizer (mmdet's DetLocalVisualizer,
mmseg's SegLocalVisualizer); wrong inputs are refused with what is wrong and what to do.

The students are the tiny RetinaNet and PSPNet of tests/data/configs/, taken out of a distiller
checkpoint by the export tool (untrained: the drawing, not the accuracy, is under test).
"""
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image
from helpers import load_tool
from mmengine.config import Config
from mmengine.registry import init_default_scope
from tiny_models import CONFIG_DIR

from mmdiffkd.engine import export_student
from mmdiffkd.registry import MODELS
from mmdiffkd.utils.checkpoint import CheckpointMismatchError

pytest.importorskip('mmcv.ops', reason='mmdet / mmseg need mmcv with ops')

torch.set_num_threads(1)

SIZE = 64
PALETTE = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]]
TASKS = {
    'det': ('distill/retinanet_r18w_to_r18_diffkd.py', 'det/tiny_retinanet_r18.py',
            dict(classes=('c0', 'c1', 'c2')),
            [dict(type='LoadImageFromFile'),
             dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True),
             dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                                   'img_shape', 'scale_factor'))]),
    'seg': ('distill/pspnet_r18w_to_r18_diffkd.py', 'seg/tiny_pspnet_r18.py',
            dict(classes=('c0', 'c1', 'c2', 'c3'), palette=PALETTE),
            [dict(type='LoadImageFromFile'),
             dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True),
             dict(type='PackSegInputs')]),
}


@pytest.fixture(scope='module')
def tool():
    return load_tool('draw_prediction')


@pytest.fixture(scope='module')
def image_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
    img[16:40, 20:52] = (200, 120, 40)
    path = tmp_path_factory.mktemp('draw_img') / 'scene.png'
    Image.fromarray(img).save(path)
    return str(path)


def _exported(kind, tmp):
    """(distiller checkpoint, exported student, student config) of the tiny ``kind`` model."""
    distill_cfg, student_cfg, meta, pipeline = TASKS[kind]
    cfg = Config.fromfile(osp.join(CONFIG_DIR, distill_cfg))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    distiller = MODELS.build(cfg.model)
    distiller_ckpt = str(tmp / f'{kind}_distiller.pth')
    torch.save(dict(state_dict=distiller.state_dict(), meta=dict(dataset_meta=meta, iter=1)),
                distiller_ckpt)
    student = Config.fromfile(osp.join(CONFIG_DIR, student_cfg))
    if kind == 'seg':
        student.test_pipeline = pipeline
    else:  # init_detector builds the test dataset lazily for its metainfo
        student.test_dataloader = dict(dataset=dict(
            type='CocoDataset', data_root='', ann_file='', lazy_init=True, test_mode=True,
            metainfo=meta, pipeline=pipeline))
    config = str(tmp / f'{kind}_student.py')
    student.dump(config)
    final = export_student(distiller_ckpt, str(tmp / f'{kind}.pth'), config=config)
    return distiller_ckpt, final, config


@pytest.fixture(scope='module')
def det(tmp_path_factory):
    return _exported('det', tmp_path_factory.mktemp('draw_det'))


@pytest.fixture(scope='module')
def seg(tmp_path_factory):
    return _exported('seg', tmp_path_factory.mktemp('draw_seg'))


def _read(path):
    return np.asarray(Image.open(path).convert('RGB')).astype(np.int32)


def test_detection_boxes_are_drawn_where_predicted(tool, det, image_file, tmp_path, capsys):
    _, final, config = det
    out = tmp_path / 'det.png'
    capsys.readouterr()
    summary = tool.main([config, final, image_file, str(out), '--score-thr', '0.0'])
    printed = capsys.readouterr().out.splitlines()
    # the last two lines (MMEngine logs its checkpoint loading before)
    assert printed[-2] == str(out) and printed[-1].startswith('task=mmdet boxes=')
    assert summary['task'] == 'mmdet' and summary['boxes'] > 0
    assert set(summary['classes']) <= {'c0', 'c1', 'c2'}
    drawn, original = _read(out), _read(image_file)
    assert drawn.shape == original.shape == (SIZE, SIZE, 3)
    # the drawing is the prediction: every pixel changed lies on or near a predicted box edge
    # or its label; the top box's edge pixels changed
    _, result, _ = tool.draw_prediction(config, final, image_file, str(tmp_path / 'again.png'),
                                        score_thr=0.0)
    top = result.pred_instances.bboxes[int(result.pred_instances.scores.argmax())]
    x1, y1, x2, y2 = (int(v) for v in top.clamp(0, SIZE - 1).round())
    edge = np.concatenate([drawn[y1, x1:x2 + 1] - original[y1, x1:x2 + 1],
                           drawn[y1:y2 + 1, x1] - original[y1:y2 + 1, x1]])
    assert np.abs(edge).sum(-1).mean() > 10
    # same model and image, a threshold above every score: nothing drawn, the picture is the image
    capsys.readouterr()
    empty = tool.main([config, final, image_file, str(tmp_path / 'none.png'),
                       '--score-thr', '1.0'])
    assert empty['boxes'] == 0 and (_read(tmp_path / 'none.png') == original).all()


def test_segmentation_label_map_is_drawn_with_the_palette(tool, seg, image_file, tmp_path):
    _, final, config = seg
    out = tmp_path / 'seg.png'
    model, result, summary = tool.draw_prediction(config, final, image_file, str(out),
                                                  opacity=1.0)
    assert summary['task'] == 'mmseg'
    assert model.dataset_meta['classes'] == ('c0', 'c1', 'c2', 'c3')
    pred = result.pred_sem_seg.data[0].numpy()
    assert pred.shape == (SIZE, SIZE)
    assert summary['classes'] == [f'c{k}' for k in np.unique(pred)]
    drawn = _read(out)
    # at opacity 1 each pixel is its predicted class's palette colour (class names are written
    # on top, so allow a few pixels of text)
    expected = np.asarray(PALETTE)[pred]
    assert (drawn == expected).all(-1).mean() > 0.8
    # half opacity mixes the image in
    tool.draw_prediction(config, final, image_file, str(tmp_path / 'half.png'), opacity=0.5)
    half = _read(tmp_path / 'half.png')
    assert (half == expected).all(-1).mean() < 0.5


def test_refuses_a_distiller_checkpoint(tool, det, image_file, tmp_path):
    distiller_ckpt, _, config = det
    with pytest.raises(ValueError, match='(?s)distiller checkpoint.*export_student.py'):
        tool.draw_prediction(config, distiller_ckpt, image_file, str(tmp_path / 'x.png'))
    assert not (tmp_path / 'x.png').exists()


def test_refuses_a_distillation_config(tool, det, image_file, tmp_path):
    _, final, _ = det
    distill = osp.join(CONFIG_DIR, 'distill', 'retinanet_r18w_to_r18_diffkd.py')
    with pytest.raises(ValueError, match="distillation config.*student's own config"):
        tool.draw_prediction(distill, final, image_file, str(tmp_path / 'x.png'))


def test_refuses_a_checkpoint_of_another_model(tool, det, seg, image_file, tmp_path):
    # a detector's weights with the segmentation config: mmseg's init_model would only warn
    _, det_final, _ = det
    _, _, seg_config = seg
    with pytest.raises(CheckpointMismatchError, match='missing key'):
        tool.draw_prediction(seg_config, det_final, image_file, str(tmp_path / 'x.png'))
    assert not (tmp_path / 'x.png').exists()


def test_refuses_bad_paths_and_values(tool, det, image_file, tmp_path):
    _, final, config = det
    out = str(tmp_path / 'x.png')
    with pytest.raises(FileNotFoundError, match='no_such.pth'):
        tool.draw_prediction(config, str(tmp_path / 'no_such.pth'), image_file, out)
    with pytest.raises(FileNotFoundError, match='no_such.py'):
        tool.draw_prediction(str(tmp_path / 'no_such.py'), final, image_file, out)
    with pytest.raises(FileNotFoundError, match='no_such.png'):
        tool.draw_prediction(config, final, str(tmp_path / 'no_such.png'), out)
    with pytest.raises(ValueError, match=r"out_file .*x\.txt.*\.png"):
        tool.draw_prediction(config, final, image_file, str(tmp_path / 'x.txt'))
    with pytest.raises(ValueError, match=r'score_thr=1\.5 is invalid'):
        tool.draw_prediction(config, final, image_file, out, score_thr=1.5)
    with pytest.raises(ValueError, match=r'opacity=-0\.1 is invalid'):
        tool.draw_prediction(config, final, image_file, out, opacity=-0.1)
    classifier = osp.join(CONFIG_DIR, 'cls', 'tiny_resnet18.py')
    with pytest.raises(ValueError, match=r"default_scope='mmpretrain'.*'mmdet', 'mmseg'"):
        tool.draw_prediction(classifier, final, image_file, out)
