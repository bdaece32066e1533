# What the three Cityscapes DiffKD configs share: the mmseg model-zoo DeepLabV3 R-101-d8 teacher
# (80.20 mIoU single scale, its metafile; the checkpoint URL is downloaded by MMEngine on first
# use and loaded with weights_only=True) and the two DiffKD blocks:
# - `feat`: the student's last stage against the teacher's `layer4` (2048 channels, 1/8
#   resolution) compressed by the linear autoencoder to 1024 (the authors' released width), 3x3
#   denoiser, MSE;
# - `logits`: the decode head's class logits (`conv_seg`, 19 classes), each pixel's scores
#   denoised as a 1x1 feature (kernel 1), per-pixel KL at tau 1. For the whole logit map as one
#   3x3-denoised map use kernel_size=3 (docs/segmentation.md).
# Both mmseg's student experiment and this file are `_base_` of a distillation config, so this
# file holds variables, not `model` (two bases may not both set it):
#   model = dict(_delete_=True, type='mmdiffkd.Distiller', student={{_base_.model}},
#                teacher={{_base_.diffkd_teacher}}, distill_losses=dict(
#                    feat=dict(loss={{_base_.diffkd_feat_loss}}, student='backbone.layer4',
#                              teacher='backbone.layer4'),
#                    logits={{_base_.diffkd_logits}}))
diffkd_teacher = dict(
    config='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
    'deeplabv3_r101-d8_512x1024_80k_cityscapes/'
    'deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth')
diffkd_feat_loss = dict(type='DiffKD', kernel_size=3, use_ae=True, ae_channels=1024,
                        inference_steps=5)
diffkd_logits = dict(
    loss=dict(type='DiffKD', kernel_size=1, distill_loss='kl', tau=1.0, inference_steps=5),
    student='decode_head.conv_seg', teacher='decode_head.conv_seg', weight=1.0)
