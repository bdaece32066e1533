# CWD (Shu et al., ICCV 2021): each channel of `backbone.layer4` (4x4) becomes a softmax over its
# 16 positions, KL to the teacher's, tau = 1; a learned 1x1 convolution adapts the student's 32
# channels to the teacher's 128. Weight 10 as MMRazor's per-feature-map weight (its COCO FPN
# configs).
_base_ = ['./_base_/distill_resnet18-w16_resnet18-w4.py']

model = dict(
    distill_losses=dict(
        feat=dict(loss=dict(type='CWD', tau=1.0), student='backbone.layer4',
                  teacher='backbone.layer4', weight=10.0)),
)
