# Teacher: CIFAR-style ResNet-18 (3x3 stem, no max-pool) at width 16 (stages 16-32-64-128),
# one grey input channel; 0.70 M parameters. Stages 1-3 stride 2, stage 4 stride 1, so the
# 28x28 input gives 4x4 maps from stage 3 on (the student's `layer4` matches this size).
_base_ = [
    './_base_/fashion-mnist_bs128.py',
    './_base_/schedule_sgd_cosine_30e.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        in_channels=1,
        stem_channels=16,
        base_channels=16,
        strides=(2, 2, 2, 1),
        num_stages=4,
        out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    data_preprocessor={{_base_.data_preprocessor}},
)

default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=5, max_keep_ckpts=1))
randomness = dict(seed=0)
