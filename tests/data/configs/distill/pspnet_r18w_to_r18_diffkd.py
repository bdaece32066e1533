# DiffKD on the last (dilated) backbone stage + MSE on the class logits of the decode head.
_base_ = '../seg/tiny_pspnet_r18.py'
model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='{{fileDirname}}/../seg/tiny_pspnet_r18_wide.py', checkpoint=None,
                 allow_untrained=True),
    distill_losses=dict(
        layer4=dict(loss=dict(type='DiffKD', inference_steps=5), student='backbone.layer4'),
        logits=dict(loss=dict(type='MSE'), student='decode_head.conv_seg')),
    dry_run=dict(input_size=(64, 64)))
