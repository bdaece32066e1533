# DiffKD on features and logits (see the DiffKD config) plus classical KD (tau = 4, weight 1) on
# the raw student logits against the teacher's.
_base_ = ['./diffkd_feat-logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py']

model = dict(
    distill_losses=dict(
        kd=dict(loss=dict(type='KD', tau=4.0), student='head.fc', teacher='head.fc',
                weight=1.0)),
)
