"""Test a checkpoint with the config's test loop and metrics (distiller or plain model).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--show-dir DIR] [--cfg-options k=v ...] [--launcher ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [same options]

A distiller predicts with its student, so the task's metrics are the student's. The checkpoint
is loaded with ``torch.load(weights_only=True)``.
"""
import argparse
import os.path as osp
import sys

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# A checkout's tools use its own package, installed or not (dist_train.sh sets PYTHONPATH alike).
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdiffkd import install_safe_loaders  # noqa: E402
from mmdiffkd.engine.launch import (add_common_args, load_config,  # noqa: E402
                                    parse_common_args, prepare_launch)
from mmdiffkd.utils import (check_checkpoint_path, extract_state_dict,  # noqa: E402
                            load_checkpoint_file)

# visualization hook -> (switch, output dir argument) in mmdet / mmseg / mmpretrain
VIS_HOOKS = {
    'DetVisualizationHook': ('draw', 'test_out_dir'),
    'SegVisualizationHook': ('draw', None),
    'VisualizationHook': ('enable', 'out_dir'),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint.')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump the predictions to this pickle file '
                                      '(MMEngine DumpResults)')
    parser.add_argument('--show-dir', help='save images with predictions drawn on them here '
                                           '(relative to the work dir\'s timestamp folder)')
    add_common_args(parser)
    return parse_common_args(parser, argv)


def enable_show_dir(cfg, show_dir):
    """Turn on the task's visualization hook and point it at ``show_dir``."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise KeyError('--show-dir needs default_hooks.visualization in the config (mmdet '
                       'DetVisualizationHook, mmseg SegVisualizationHook or mmpretrain '
                       'VisualizationHook); the config has none.')
    name = hook['type'].split('.')[-1]
    if name not in VIS_HOOKS:
        raise ValueError(f'--show-dir: unknown visualization hook {hook["type"]!r}; known: '
                         f'{sorted(VIS_HOOKS)}.')
    switch, out_key = VIS_HOOKS[name]
    hook[switch] = True
    if out_key is not None:
        hook[out_key] = show_dir
    else:  # SegVisualizationHook writes under the visualizer's save_dir
        if cfg.get('visualizer') is None:
            cfg.visualizer = dict(type='SegLocalVisualizer', name='visualizer')
        cfg.visualizer.save_dir = show_dir
    return cfg


def check_checkpoint_kind(cfg, checkpoint):
    """Refuse a distiller checkpoint with a plain config and a student export with a
    distillation config: MMEngine loads checkpoints non-strictly, so either mix-up would
    silently evaluate randomly initialised weights."""
    state_dict = extract_state_dict(load_checkpoint_file(checkpoint), checkpoint)
    heads = {k.split('.', 1)[0] for k in state_dict}
    model_type = str(cfg.model.get('type', '')).split('.')[-1]
    if model_type == 'Distiller' and 'student' not in heads:
        raise ValueError(f'{checkpoint!r} has no "student.*" weights (its keys start with '
                         f'{sorted(heads)[:8]}), so it is not a distiller checkpoint but the '
                         f'config builds a Distiller. Test an exported student with the '
                         "student's own config.")
    if model_type != 'Distiller' and 'student' in heads \
            and heads <= {'student', 'teacher', 'distill_losses', 'data_preprocessor'}:
        raise ValueError(f'{checkpoint!r} is a distiller checkpoint (student.* keys) but the '
                         f'config builds a {model_type}. Test it with the distillation config, '
                         'or export the student first: python tools/export_student.py '
                         f'{checkpoint} student.pth')


def build_cfg(args):
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    check_checkpoint_path(args.checkpoint, 'Checkpoint')
    check_checkpoint_kind(cfg, args.checkpoint)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir is not None:
        enable_show_dir(cfg, args.show_dir)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out!r}: the file must end with .pkl or .pickle.')
        dump = dict(type='DumpResults', out_file_path=args.out)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = list(evaluator) + [dump]
        elif 'metrics' in evaluator:
            metrics = evaluator['metrics']
            evaluator['metrics'] = (list(metrics) if isinstance(metrics, (list, tuple))
                                    else [metrics]) + [dump]
        else:
            cfg.test_evaluator = [evaluator, dump]
    prepare_launch(cfg, args.launcher)
    return cfg


def main(argv=None):
    install_safe_loaders()
    args = parse_args(argv)
    cfg = build_cfg(args)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    return runner.test()


if __name__ == '__main__':
    main()
