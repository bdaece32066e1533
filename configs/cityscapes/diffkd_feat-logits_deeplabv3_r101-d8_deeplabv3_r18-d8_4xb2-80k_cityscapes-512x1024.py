# DiffKD on Cityscapes, the segmentation protocol of the DiffKD paper's sibling works (DIST,
# MasKD): DeepLabV3 R-101-d8 teacher -> DeepLabV3 R-18-d8 student, 512x1024 crops, 4 GPUs x 2
# images, 80k iterations, mmseg's own schedule and data pipeline (SGD lr 0.01, poly). Everything
# but `model` is mmseg's student config, including its ImageNet backbone initialisation
# (open-mmlab://resnet18_v1c) and auxiliary FCN head. mmseg model zoo (metafile): student alone
# 76.70 mIoU (single scale). Teacher and DiffKD blocks: the `_base_` file.
#   bash tools/dist_train.sh \
#       configs/cityscapes/diffkd_feat-logits_deeplabv3_r101-d8_deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py 4
_base_ = ['mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
          './_base_/diffkd_deeplabv3_r101-d8_teacher_cityscapes.py']

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher={{_base_.diffkd_teacher}},
    distill_losses=dict(
        feat=dict(loss={{_base_.diffkd_feat_loss}}, student='backbone.layer4',
                  teacher='backbone.layer4', weight=1.0),
        logits={{_base_.diffkd_logits}}))
