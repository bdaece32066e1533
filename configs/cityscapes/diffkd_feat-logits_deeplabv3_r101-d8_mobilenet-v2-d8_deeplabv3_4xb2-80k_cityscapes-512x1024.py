# DiffKD on Cityscapes: DeepLabV3 R-101-d8 teacher -> DeepLabV3 MobileNetV2-d8 student, 512x1024
# crops, 4 GPUs x 2 images, 80k iterations, mmseg's own student config otherwise (schedule, data,
# ImageNet backbone initialisation mmcls://mobilenet_v2, auxiliary FCN head).
# mmseg model zoo (metafile): teacher 80.20 mIoU, student alone 73.84 mIoU (single scale).
# DiffKD blocks as for the ResNet-18 students, on the student's last stage: MobileNetV2's
# `layer7` (320 channels, 1/8 resolution, the last of out_indices (1, 2, 4, 6)) against the
# teacher's `layer4` (2048, autoencoder to 1024, MSE), and `logits` on `decode_head.conv_seg`
# (19 classes, per-pixel kernel-1 denoiser, KL at tau 1).
#   bash tools/dist_train.sh \
#       configs/cityscapes/diffkd_feat-logits_deeplabv3_r101-d8_mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py 4
_base_ = 'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py'

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
                  student='backbone.layer7', teacher='backbone.layer4', weight=1.0),
        logits=dict(loss=dict(type='DiffKD', kernel_size=1, distill_loss='kl', tau=1.0,
                              inference_steps=5),
                    student='decode_head.conv_seg', teacher='decode_head.conv_seg',
                    weight=1.0)))
