# DiffKD on features and logits (see the DiffKD config) plus DIST (beta = gamma = tau = 1,
# weight 1, see the DIST config) on the raw student logits against the teacher's.
_base_ = ['./diffkd_feat-logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py']

model = dict(
    distill_losses=dict(
        dist=dict(loss=dict(type='DIST', beta=1.0, gamma=1.0, tau=1.0), student='head.fc',
                  teacher='head.fc', weight=1.0)),
)
