# Student alone for the segmentation demo: DeepLabV3, ResNet-18-d8 (ResNetV1c), trained from
# scratch on the 160x160 texture scenes (widths as in mmseg's R-18-d8 Cityscapes config).
_base_ = './deeplabv3_r50-d8_1xb8-8k_scenes-160.py'

model = dict(
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
