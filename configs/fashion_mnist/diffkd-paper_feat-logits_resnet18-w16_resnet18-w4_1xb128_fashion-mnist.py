# DiffKD exactly as the paper's released classification recipe: the DiffKD config without the
# distillation warm-up (every part weighted 1 and trained jointly from the first iteration).
_base_ = ['./diffkd_feat-logits_resnet18-w16_resnet18-w4_1xb128_fashion-mnist.py']

model = dict(
    distill_losses=dict(
        feat=dict(loss=dict(distill_warmup_iters=0)),
        logits=dict(loss=dict(distill_warmup_iters=0))))
