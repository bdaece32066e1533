"""Evaluate the teacher too, after each validation, and log its metrics under ``val/teacher/``.

Add to a distillation config::

    custom_hooks = [dict(type='mmdiffkd.TeacherValHook')]

It runs the validation dataloader a second time through the teacher's ``predict`` (on the batch
the teacher's normalization expects) and the same evaluator, so the log shows student and teacher
side by side, e.g. ``coco/bbox_mAP`` and ``teacher/coco/bbox_mAP``. The teacher never changes, so
``once=True`` (the default) evaluates it only at the first validation. It costs one more
validation pass each time it runs.
"""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdiffkd.registry import HOOKS


@HOOKS.register_module()
class TeacherValHook(Hook):
    """Run the evaluator on the teacher's predictions after each validation epoch.

    Args:
        prefix (str): log prefix of the teacher's metrics. Defaults to ``'teacher'``.
        once (bool): evaluate only at the first validation (the teacher is frozen).
    """

    priority = 'NORMAL'  # after RuntimeInfoHook (stores student metrics), before LoggerHook

    def __init__(self, prefix='teacher', once=True):
        self.prefix = prefix
        self.once = once
        self.metrics = None

    def after_val_epoch(self, runner, metrics=None):
        if self.metrics is None or not self.once:
            self.metrics = self.evaluate_teacher(runner)
        for key, value in self.metrics.items():
            runner.message_hub.update_scalar(f'val/{self.prefix}/{key}', value)
        runner.logger.info(f'{self.prefix}: ' + '  '.join(
            f'{k}: {v:.4f}' if isinstance(v, float) else f'{k}: {v}'
            for k, v in self.metrics.items()))

    @torch.no_grad()
    def evaluate_teacher(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'teacher'):
            raise TypeError(f'TeacherValHook needs a Distiller model, got '
                            f'{type(model).__name__}.')
        loop = runner.val_loop
        teacher = model.teacher
        teacher.eval()
        for data_batch in loop.dataloader:
            data = model.data_preprocessor(data_batch, False)
            outputs = teacher(model.teacher_inputs(data['inputs']), data['data_samples'],
                              mode='predict')
            loop.evaluator.process(data_samples=outputs, data_batch=data_batch)
        return loop.evaluator.evaluate(len(loop.dataloader.dataset))
