# Student alone for the segmentation demo: DeepLabV3, ResNet-18-d16 (ResNetV1c), trained from
# scratch on the texture scenes with the teacher's schedule (head widths as in mmseg's R-18-d8
# Cityscapes config).
_base_ = './deeplabv3_r50-d16_1xb8-1k_scenes.py'

model = dict(
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128))
