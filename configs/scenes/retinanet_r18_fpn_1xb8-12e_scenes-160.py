# Student alone for the detection demo: RetinaNet, ResNet-18 + FPN, trained from scratch on
# the 160x160 texture scenes. Same neck / head widths (256) as the ResNet-50 teacher, so FPN
# features can be distilled level by level.
_base_ = './retinanet_r50_fpn_1xb8-12e_scenes-160.py'

model = dict(
    backbone=dict(depth=18),
    neck=dict(in_channels=[64, 128, 256, 512]))
