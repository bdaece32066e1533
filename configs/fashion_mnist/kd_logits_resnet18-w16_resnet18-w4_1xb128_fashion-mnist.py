# KD (Hinton et al., 2015): KL divergence of temperature-softened logits, tau = 4.
# The teacher checkpoint is what `tools/train.py` writes for the teacher config
# (`python tools/train.py configs/fashion_mnist/resnet18-w16_1xb128_fashion-mnist.py`);
# `tools/demo.py` passes its own cached one.
_base_ = ['./resnet18-w4_1xb128_fashion-mnist.py']

teacher_config = '{{fileDirname}}/resnet18-w16_1xb128_fashion-mnist.py'
teacher_checkpoint = 'work_dirs/resnet18-w16_1xb128_fashion-mnist/epoch_30.pth'

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config=teacher_config, checkpoint=teacher_checkpoint),
    dry_run=dict(input_size=(28, 28), in_channels=1),
    distill_losses=dict(
        logits=dict(loss=dict(type='KD', tau=4.0), student='head.fc', teacher='head.fc',
                    weight=1.0)),
)
