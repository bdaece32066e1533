# DiffKD on Cityscapes, the segmentation protocol of the DiffKD paper's sibling works (DIST,
# MasKD; /work/shared/reference notes): DeepLabV3 R-101-d8 teacher -> DeepLabV3 R-18-d8 student,
# 512x1024 crops, 4 GPUs x 2 images, 80k iterations, mmseg's own schedule and data pipeline
# (SGD lr 0.01, poly). Everything but `model` is mmseg's student config, including its ImageNet
# backbone initialisation (open-mmlab://resnet18_v1c) and auxiliary FCN head.
# mmseg model zoo (metafile): teacher 80.20 mIoU, student alone 76.70 mIoU (single scale).
# DiffKD on two places:
# - `feat`: the backbone's last stage (512 <- 2048 channels, 1/8 resolution), 3x3 denoiser on
#   the teacher feature compressed by the linear autoencoder to 1024 channels (the width of the
#   authors' released autoencoder), MSE;
# - `logits`: the decode head's class logits (`conv_seg`, 19 channels), each pixel's scores
#   denoised as a 1x1 feature (kernel 1), per-pixel KL at tau 1. For the whole logit map as
#   one 3x3-denoised map use kernel_size=3 (docs/segmentation.md).
#   bash tools/dist_train.sh \
#       configs/cityscapes/diffkd_feat-logits_deeplabv3_r101-d8_deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py 4
# The teacher checkpoint is the model zoo's URL (downloaded by MMEngine on first use, then loaded
# with weights_only=True).
_base_ = 'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
        'deeplabv3_r101-d8_512x1024_80k_cityscapes/'
        'deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'),
    distill_losses=dict(
        feat=dict(loss=dict(type='DiffKD', kernel_size=3, use_ae=True, ae_channels=1024,
                            inference_steps=5),
                  student='backbone.layer4', teacher='backbone.layer4', weight=1.0),
        logits=dict(loss=dict(type='DiffKD', kernel_size=1, distill_loss='kl', tau=1.0,
                              inference_steps=5),
                    student='decode_head.conv_seg', teacher='decode_head.conv_seg',
                    weight=1.0)))
