# DiffKD (Huang et al., NeurIPS 2023) as the paper distils classifiers: the last feature stage
# (`backbone.layer4`, 4x4 maps, 32 -> 128 channels, through a linear autoencoder to 64) and the
# logits (kernel-1 denoiser, KL at tau 1), every part weighted 1 next to the cross-entropy, 5 DDIM
# steps. DiffKDVisHook draws the denoised maps and the diagnostics' curves (docs/diffkd.md).
_base_ = ['./_base_/distill_resnet18-w16_resnet18-w4.py']

model = dict(
    distill_losses=dict(
        feat=dict(loss=dict(type='DiffKD', kernel_size=3, use_ae=True, ae_channels=64,
                            inference_steps=5),
                  student='backbone.layer4', teacher='backbone.layer4', weight=1.0),
        logits=dict(loss=dict(type='DiffKD', kernel_size=1, inference_steps=5),
                    student='head.fc', teacher='head.fc', weight=1.0)))
custom_hooks = [dict(type='mmdiffkd.DiffKDVisHook', interval=200)]
