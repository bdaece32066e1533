# Student: the teacher's CIFAR-style ResNet-18 at width 4 (stages 4-8-16-32): 16x fewer
# parameters (0.045 M) and ~14x fewer multiply-adds. Same strides, so its `layer4` map is
# 4x4 like the teacher's.
_base_ = ['./resnet18-w16_1xb128_fashion-mnist.py']

model = dict(
    backbone=dict(stem_channels=4, base_channels=4),
    head=dict(in_channels=32),
)
