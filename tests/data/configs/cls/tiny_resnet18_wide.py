# Teacher for tiny_resnet18: twice the width.
_base_ = './tiny_resnet18.py'
model = dict(backbone=dict(stem_channels=32, base_channels=32), head=dict(in_channels=256))
