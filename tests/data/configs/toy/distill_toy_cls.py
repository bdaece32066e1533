# Distillation config in the form users write: the student experiment is the base config.
_base_ = './toy_cls.py'
model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='{{fileDirname}}/toy_cls_wide.py', checkpoint=None, allow_untrained=True),
    distill_losses=dict(
        stage2=dict(loss=dict(type='DiffKD', inference_steps=5), student='stage2',
                    teacher='stage2'),
        logits=dict(loss=dict(type='KD', tau=4.0), student='fc', weight=0.5)),
    dry_run=dict(input_size=(16, 16)))
