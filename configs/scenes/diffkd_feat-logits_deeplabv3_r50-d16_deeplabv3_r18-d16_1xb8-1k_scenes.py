# DiffKD for segmentation (DeepLabV3 R-50-d16 teacher -> R-18-d16 student, texture scenes), on two
# places:
# - the backbone's last stage (512 <- 2048 channels, 8x8 maps at 128 px): a 3x3 denoiser on the
#   teacher feature compressed by the linear autoencoder to 256 channels, MSE;
# - the decode head's class logits (`conv_seg`, 11 channels) as one map: a 3x3 denoiser sees each
#   pixel's neighbourhood, KL of the class softmax at every pixel, tau 1. It beat the per-pixel
#   form (each pixel's scores a 1x1 feature, `kernel_size=1`) on the hold-out split, with the same
#   tuning budget as CWD (4 trials; docs/segmentation.md).
# DiffKDVisHook draws the denoised maps and the diagnostics' curves (docs/diffkd.md).
_base_ = './_base_/distill_deeplabv3_r50-d16_deeplabv3_r18-d16_scenes.py'

model = dict(
    distill_losses=dict(
        feat=dict(loss=dict(type='DiffKD', kernel_size=3, use_ae=True, ae_channels=256,
                            inference_steps=5),
                  student='backbone.layer4', teacher='backbone.layer4', weight=1.0),
        logits=dict(loss=dict(type='DiffKD', kernel_size=3, distill_loss='kl', tau=1.0,
                              inference_steps=5),
                    student='decode_head.conv_seg', teacher='decode_head.conv_seg',
                    weight=1.0)))
custom_hooks = [dict(type='mmdiffkd.DiffKDVisHook', interval=250)]
