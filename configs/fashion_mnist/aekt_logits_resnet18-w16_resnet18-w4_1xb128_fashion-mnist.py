# AEKT (Park & Lee, arXiv 2409.01679; this project's reading of the abstract, unverified): DKD's
# terms with the explicit (target) term weighted by the teacher/student target-probability ratio,
# computed on a serial 10 x 10 distillation head after the student's logits (identity-initialised,
# training only); defaults alpha = 1, beta = 8, tau = 4 (DKD's CIFAR-100 values), weight 1, and
# DKD's linear warm-up (see the DKD config: 1172 iterations, scaled by the demo / benchmark) and
# gradient clipping at norm 5. Without them the terms (about 50 and 150 on the first batches,
# tau^2 = 16, beta = 8, the explicit one weighted up to 10x) drove the student to NaN in the
# first epoch at lr 0.1 in the benchmark; with the warm-up alone it still did (lr 0.08 at
# iteration 79); with both, 2 epochs of the 8-epoch run reached 70.1 % on 1000 test images.
# Teacher checkpoint: see the KD config.
_base_ = ['./kd_logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py']

model = dict(
    distill_losses=dict(
        _delete_=True,
        logits=dict(loss=dict(type='AEKT', head='serial', alpha=1.0, beta=8.0, tau=4.0,
                              warmup_iters=1172),
                    student='head.fc', teacher='head.fc', weight=1.0)),
)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0, norm_type=2))
