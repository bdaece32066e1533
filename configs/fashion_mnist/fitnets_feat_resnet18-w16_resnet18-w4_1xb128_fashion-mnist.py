# FitNets (Romero et al., ICLR 2015): mean squared error between the teacher's last feature stage
# (`backbone.layer4`, 128 channels, 4x4) and the student's (32 channels) through a learned 1x1
# convolution + BatchNorm regressor, weight 10, as MMRazor's classification FitNets config.
# Teacher checkpoint: see the KD config.
_base_ = ['./kd_logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py']

model = dict(
    distill_losses=dict(
        _delete_=True,
        feat=dict(loss=dict(type='FitNets', norm=True), student='backbone.layer4',
                  teacher='backbone.layer4', weight=10.0)),
)
