# Pilot (docs/segmentation.md, "Benchmark"): the DeepLabV3 R-18-d16 student alone with a
# class-weighted cross-entropy (background 0.1, each item class 1.0), 300 iterations. Without
# the weights the scenes models predicted background everywhere; with them item classes appear.
# mmseg 1.2.2's CrossEntropyLoss indexes `class_weight` with every label, the ignore label 255
# of the RandomResize padding included (IndexError), so padding is labelled background here.
_base_ = './deeplabv3_r18-d16_1xb8-1k_scenes.py'

data_preprocessor = dict(seg_pad_val=0)
model = dict(
    data_preprocessor=dict(seg_pad_val=0),
    decode_head=dict(loss_decode=dict(
        type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
        class_weight=[0.1] + [1.0] * 10)))
train_cfg = dict(max_iters=300, val_interval=300)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=300, by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=300))
