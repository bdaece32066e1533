# DiffKD on the last backbone stage + MSE on the FPN levels of a two-stage detector.
_base_ = '../det/tiny_faster_rcnn_r18.py'
model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='{{fileDirname}}/../det/tiny_faster_rcnn_r18_wide.py', checkpoint=None,
                 allow_untrained=True),
    distill_losses=dict(
        layer4=dict(loss=dict(type='DiffKD', inference_steps=5), student='backbone.layer4'),
        fpn=dict(loss=dict(type='MSE'), student='neck', index=[0, 1, 2, 3, 4], weight=0.5)),
    dry_run=dict(input_size=(64, 64)))
