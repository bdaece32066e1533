# Student alone for the two-stage detection demo: Faster R-CNN, ResNet-18 + FPN, trained from
# scratch on the texture scenes with the teacher's schedule. Same FPN / RPN / RoI widths (128)
# as the ResNet-50 teacher, so FPN levels can be distilled level by level.
_base_ = './faster-rcnn_r50_fpn_1xb8-6e_scenes.py'

model = dict(
    backbone=dict(depth=18),
    neck=dict(in_channels=[64, 128, 256, 512]))
