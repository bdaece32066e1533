# Teacher for tiny_pspnet_r18: twice the width.
_base_ = './tiny_pspnet_r18.py'
model = dict(backbone=dict(stem_channels=32, base_channels=32),
             decode_head=dict(in_channels=256, channels=64))
