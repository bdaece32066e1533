# DKD (Zhao et al., CVPR 2022): target (TCKD) and non-target (NCKD) KL terms of the logits,
# decoupled, with mdistiller's CIFAR-100 defaults alpha = 1, beta = 8, tau = 4. The authors
# multiply the loss by min(epoch / 20, 1), stepped per epoch from epoch 1, over 240 CIFAR epochs
# (`warmup_epochs=20`). This config instead uses the per-iteration option, a linear ramp over the
# same fraction of its 30 epochs: 2.5 epochs of 469 iterations = 1172 iterations, because
# `tools/demo.py` and `benchmarks/bench_fashion_mnist.py` keep that fraction for shorter runs
# (`scale_warmups`: 8 epochs x 79 iterations on 10000 images -> 53 iterations); `tools/train.py`
# uses 1172 as written.
_base_ = ['./_base_/distill_resnet18-w16_resnet18-w4.py']

model = dict(
    distill_losses=dict(
        logits=dict(loss=dict(type='DKD', alpha=1.0, beta=8.0, tau=4.0, warmup_iters=1172),
                    student='head.fc', teacher='head.fc', weight=1.0)),
)
