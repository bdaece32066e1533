# DIST (Huang et al., NeurIPS 2022): inter- and intra-class Pearson relations of the logits,
# beta = gamma = 1, tau = 1 (the paper's values for CIFAR-100 use tau = 4; we keep 1 as in
# its ImageNet recipe).
_base_ = ['./_base_/distill_resnet18-w16_resnet18-w4.py']

model = dict(
    distill_losses=dict(
        logits=dict(loss=dict(type='DIST', beta=1.0, gamma=1.0, tau=1.0), student='head.fc',
                    teacher='head.fc', weight=1.0)),
)
