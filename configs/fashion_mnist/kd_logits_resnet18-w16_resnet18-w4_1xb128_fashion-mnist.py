# KD (Hinton et al., 2015): KL divergence of temperature-softened logits, tau = 4, weight 2. The
# weight (Hinton's recipe: 1) was chosen on the hold-out split with the same tuning budget as
# DiffKD (8 trials of tau and weight; docs/classification.md).
_base_ = ['./_base_/distill_resnet18-w16_resnet18-w4.py']

model = dict(
    distill_losses=dict(
        logits=dict(loss=dict(type='KD', tau=4.0), student='head.fc', teacher='head.fc',
                    weight=2.0)))
