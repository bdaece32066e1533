# AEKT (Park & Lee, arXiv 2409.01679; this project's reading of the abstract, unverified): DKD's
# terms with the explicit (target) term weighted by the teacher/student target-probability ratio,
# on a serial 10 x 10 distillation head after the student's logits (identity-initialised,
# training only); alpha = 1, beta = 8, tau = 4 (DKD's CIFAR-100 values), weight 1, DKD's linear
# warm-up (1172 iterations, scaled by the demo / benchmark) and gradient clipping at norm 5: without
# both the student went NaN in the first epoch (docs/methods.md).
_base_ = ['./_base_/distill_resnet18-w16_resnet18-w4.py']

model = dict(
    distill_losses=dict(
        logits=dict(loss=dict(type='AEKT', head='serial', alpha=1.0, beta=8.0, tau=4.0,
                              warmup_iters=1172),
                    student='head.fc', teacher='head.fc', weight=1.0)),
)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0, norm_type=2))
