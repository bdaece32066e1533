# The released DiffKD recipe in miniature: DiffKD on layer4 and on the logits, FitNets on layer3.
_base_ = '../cls/tiny_resnet18.py'
model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='{{fileDirname}}/../cls/tiny_resnet18_wide.py', checkpoint=None,
                 allow_untrained=True),
    distill_losses=dict(
        layer4=dict(loss=dict(type='DiffKD', inference_steps=5), student='backbone.layer4'),
        layer3=dict(loss=dict(type='FitNets'), student='backbone.layer3'),
        logits=dict(loss=dict(type='KD', tau=1.0), student='head.fc')),
    dry_run=dict(input_size=(32, 32)))
