# FitNets (Romero et al., ICLR 2015) as MMRazor's classification FitNets config computes it: the
# student's last feature stage (`backbone.layer4`, 32 channels, 4x4) through a learned 1x1
# convolution + BatchNorm + ReLU regressor (MMRazor's ConvModuleConnector) to the teacher's
# width (128), then MMRazor's L2Loss (each sample's map flattened and L2-normalised on both
# sides, squared distance summed, divided by the batch size), weight 10. MMRazor also distils
# stage 3 and the logits (KL); this config keeps the last stage only.
_base_ = ['./_base_/distill_resnet18-w16_resnet18-w4.py']

model = dict(
    distill_losses=dict(
        feat=dict(loss=dict(type='FitNets', norm=True, relu=True, distance='normalized_l2'),
                  student='backbone.layer4', teacher='backbone.layer4', weight=10.0)),
)
