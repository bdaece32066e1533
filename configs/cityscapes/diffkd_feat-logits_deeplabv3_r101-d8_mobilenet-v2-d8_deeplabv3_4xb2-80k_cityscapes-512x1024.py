# DiffKD on Cityscapes: DeepLabV3 R-101-d8 teacher -> DeepLabV3 MobileNetV2-d8 student, 512x1024
# crops, 4 GPUs x 2 images, 80k iterations, mmseg's own student config otherwise (schedule, data,
# ImageNet backbone initialisation mmcls://mobilenet_v2, auxiliary FCN head). mmseg model zoo
# (metafile): student alone 73.84 mIoU (single scale). The shared DiffKD blocks (`_base_` file),
# with MobileNetV2's last stage `layer7` (320 channels, 1/8 resolution, the last of out_indices
# (1, 2, 4, 6)) as the student side of `feat`.
#   bash tools/dist_train.sh \
#       configs/cityscapes/diffkd_feat-logits_deeplabv3_r101-d8_mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py 4
_base_ = ['mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py',
          './_base_/diffkd_deeplabv3_r101-d8_teacher_cityscapes.py']

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher={{_base_.diffkd_teacher}},
    distill_losses=dict(
        feat=dict(loss={{_base_.diffkd_feat_loss}}, student='backbone.layer7',
                  teacher='backbone.layer4', weight=1.0),
        logits={{_base_.diffkd_logits}}))
