"""Draw what an exported student predicts on one image, with the task's own visualizer.

    python tools/draw_prediction.py CONFIG CHECKPOINT IMAGE OUT_FILE [--device cpu]
        [--score-thr 0.3] [--opacity 0.5]

``CONFIG`` is the student's own (plain mmdet / mmseg) config, ``CHECKPOINT`` the file written by
``tools/export_student.py``. The task comes from the config's ``default_scope``:

- ``mmdet``: ``mmdet.apis.init_detector`` + ``inference_detector``, boxes drawn by
  ``DetLocalVisualizer`` (those scoring below ``--score-thr`` are left out);
- ``mmseg``: ``mmseg.apis.init_model`` + ``inference_model``, the label map drawn by
  ``SegLocalVisualizer`` over the image (``--opacity``).

The checkpoint is read with ``weights_only=True`` and must fit the config's model exactly; a
distiller checkpoint (``student.*`` keys) or a distillation config is refused with the command
that exports the student. The picture's path and a one-line summary are printed.
"""
import argparse
import os.path as osp
import sys
import uuid

# A checkout's tools use its own package, installed or not (dist_train.sh sets PYTHONPATH alike).
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdiffkd import install_safe_loaders  # noqa: E402
from mmdiffkd.utils.checkpoint import (CheckpointMismatchError, compare_state_dict,  # noqa: E402
                                       extract_state_dict, load_checkpoint_file,
                                       mismatch_message)
from mmdiffkd.utils.integrity import check_checkpoint_path  # noqa: E402

TASKS = ('mmdet', 'mmseg')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')


def load_config(config):
    """The student's config and its task scope; refuses distillation configs and other tasks."""
    from mmengine.config import Config
    if not osp.isfile(config):
        raise FileNotFoundError(f'config {config!r} does not exist (expected the student\'s own '
                                'mmdet or mmseg config file).')
    cfg = Config.fromfile(config)
    model_type = (cfg.get('model') or {}).get('type', '')
    if isinstance(model_type, str) and model_type.endswith('Distiller'):
        raise ValueError(f'config {config!r} is a distillation config (model type '
                         f'{model_type!r}); give the student\'s own config, the one the '
                         'distillation config was built on (its `_base_`).')
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'config {config!r} has default_scope={scope!r}; valid: {TASKS} '
                         '(detection with mmdet, segmentation with mmseg).')
    return cfg, scope


def check_checkpoint(checkpoint):
    """The exported weights (state dict), or a clear error for a file that is not one."""
    check_checkpoint_path(checkpoint, 'checkpoint', hint='(expected the .pth written by '
                          'tools/export_student.py, or an http(s):// URL).')
    state_dict = extract_state_dict(load_checkpoint_file(checkpoint), checkpoint)
    if any(k.startswith('student.') for k in state_dict):
        raise ValueError(f'checkpoint {checkpoint!r} is a distiller checkpoint (its weights are '
                         '"student.*", "distill_losses.*"); export the student first:\n'
                         f'  python tools/export_student.py {checkpoint} release/student.pth '
                         '--config STUDENT_CONFIG')
    return state_dict


def _check_fits(model, state_dict, checkpoint):
    """The task APIs load non-strictly (a warning only): refuse any missing / extra key here."""
    missing, unexpected, shapes = compare_state_dict(model, state_dict)
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(
            mismatch_message(model, checkpoint, missing, unexpected, shapes), missing,
            unexpected, shapes)


def _draw_detection(cfg, checkpoint, state_dict, image, out_file, device, score_thr):
    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.visualization import DetLocalVisualizer
    model = init_detector(cfg, checkpoint, device=device)
    _check_fits(model, state_dict, checkpoint)
    result = inference_detector(model, image)
    visualizer = DetLocalVisualizer(name=f'draw_prediction_{uuid.uuid4().hex}')
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample('prediction', mmcv.imread(image, channel_order='rgb'),
                              data_sample=result, draw_gt=False, show=False,
                              out_file=out_file, pred_score_thr=score_thr)
    kept = result.pred_instances[result.pred_instances.scores >= score_thr]
    classes = model.dataset_meta.get('classes', ())
    names = sorted({classes[i] if i < len(classes) else str(i) for i in kept.labels.tolist()})
    summary = dict(task='mmdet', boxes=len(kept), classes=names)
    return model, result, summary


def _draw_segmentation(cfg, checkpoint, state_dict, image, out_file, device, opacity):
    import mmcv
    from mmseg.apis import inference_model, init_model
    from mmseg.visualization import SegLocalVisualizer
    model = init_model(cfg, checkpoint, device=device)
    _check_fits(model, state_dict, checkpoint)
    result = inference_model(model, image)
    visualizer = SegLocalVisualizer(name=f'draw_prediction_{uuid.uuid4().hex}', alpha=opacity)
    visualizer.dataset_meta = dict(classes=model.dataset_meta['classes'],
                                   palette=model.dataset_meta['palette'])
    visualizer.add_datasample('prediction', mmcv.imread(image, channel_order='rgb'),
                              data_sample=result, draw_gt=False, show=False,
                              out_file=out_file)
    labels = result.pred_sem_seg.data.unique().tolist()
    classes = model.dataset_meta['classes']
    summary = dict(task='mmseg', classes=[classes[i] if i < len(classes) else str(i)
                                          for i in labels])
    return model, result, summary


def draw_prediction(config, checkpoint, image, out_file, device='cpu', score_thr=0.3,
                    opacity=0.5):
    """Predict on ``image`` with the exported student and write the picture to ``out_file``.

    Returns ``(model, result, summary)``: the loaded model, the task's data sample and a dict
    (``task``; ``boxes`` and ``classes`` drawn for mmdet, ``classes`` present for mmseg).
    """
    if not osp.isfile(image):
        raise FileNotFoundError(f'image {image!r} does not exist.')
    if osp.splitext(out_file)[1].lower() not in IMAGE_SUFFIXES:
        raise ValueError(f'out_file {out_file!r} must end with one of {IMAGE_SUFFIXES}.')
    if not 0.0 <= score_thr <= 1.0:
        raise ValueError(f'score_thr={score_thr!r} is invalid: need a number in [0, 1].')
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f'opacity={opacity!r} is invalid: need a number in [0, 1].')
    cfg, scope = load_config(config)
    state_dict = check_checkpoint(checkpoint)
    if scope == 'mmdet':
        model, result, summary = _draw_detection(cfg, checkpoint, state_dict, image, out_file,
                                                 device, score_thr)
    else:
        model, result, summary = _draw_segmentation(cfg, checkpoint, state_dict, image,
                                                    out_file, device, opacity)
    return model, result, summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Draw an exported student's prediction on an image (mmdet or mmseg).")
    parser.add_argument('config', help="the student's own config (default_scope mmdet / mmseg)")
    parser.add_argument('checkpoint', help='the exported student (tools/export_student.py)')
    parser.add_argument('image', help='input image file')
    parser.add_argument('out_file', help='picture to write (.png, .jpg, .jpeg, .bmp)')
    parser.add_argument('--device', default='cpu', help='cpu (default) or cuda:0, ...')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw boxes scoring at least this (default 0.3)')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='segmentation: opacity of the label map (default 0.5)')
    return parser.parse_args(argv)


def main(argv=None):
    install_safe_loaders()  # init_detector / init_model load through MMEngine's loaders
    args = parse_args(argv)
    _, _, summary = draw_prediction(args.config, args.checkpoint, args.image, args.out_file,
                                    device=args.device, score_thr=args.score_thr,
                                    opacity=args.opacity)
    print(args.out_file)
    print(' '.join(f'{k}={v}' for k, v in summary.items()))
    return summary


if __name__ == '__main__':
    main()
