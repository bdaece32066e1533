# Teacher for tiny_faster_rcnn_r18: twice the backbone width, same FPN width.
_base_ = './tiny_faster_rcnn_r18.py'
model = dict(backbone=dict(base_channels=32), neck=dict(in_channels=[32, 64, 128, 256]))
