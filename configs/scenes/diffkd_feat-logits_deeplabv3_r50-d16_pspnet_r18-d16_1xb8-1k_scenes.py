# DiffKD for segmentation across architectures: DeepLabV3 R-50-d16 teacher -> PSPNet R-18-d16
# student, texture scenes, the student's 1000-iteration CPU schedule. The same two blocks as the
# DeepLabV3 student (diffkd_feat-logits_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py):
# - `feat`: the backbone's last stage (512 <- 2048 channels, 8x8 at 128 px), 3x3 denoiser on the
#   teacher feature compressed by the linear autoencoder to 256 channels, MSE;
# - `logits`: the decode head's class logits (`conv_seg`, 11 channels; PSPHead and ASPPHead both
#   end in it) as one map, 3x3 denoiser, KL of the class softmax at every pixel, tau 1.
# Train the teacher first (its checkpoint path below is tools/train.py's default work dir):
#   bash tools/dist_train.sh configs/scenes/deeplabv3_r50-d16_1xb8-1k_scenes.py 1
#   bash tools/dist_train.sh \
#       configs/scenes/diffkd_feat-logits_deeplabv3_r50-d16_pspnet_r18-d16_1xb8-1k_scenes.py 1
_base_ = './pspnet_r18-d16_1xb8-1k_scenes.py'

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{fileDirname}}/deeplabv3_r50-d16_1xb8-1k_scenes.py',
        checkpoint='work_dirs/deeplabv3_r50-d16_1xb8-1k_scenes/iter_1000.pth'),
    distill_losses=dict(
        feat=dict(loss=dict(type='DiffKD', kernel_size=3, use_ae=True, ae_channels=256,
                            inference_steps=5),
                  student='backbone.layer4', teacher='backbone.layer4', weight=1.0),
        logits=dict(loss=dict(type='DiffKD', kernel_size=3, distill_loss='kl', tau=1.0,
                              inference_steps=5),
                    student='decode_head.conv_seg', teacher='decode_head.conv_seg',
                    weight=1.0),
    ))
custom_hooks = [dict(type='mmdiffkd.DiffKDVisHook', interval=250)]
