# Teacher for the segmentation demo: DeepLabV3, ResNet-50-d8 (ResNetV1c), trained from scratch
# (no weights can be downloaded) on the 160x160 texture scenes, 11 classes (0 background).
#   python tools/make_scenes.py --out data/scenes
#   bash tools/dist_train.sh configs/scenes/deeplabv3_r50-d8_1xb8-8k_scenes-160.py 1
_base_ = [
    'mmseg::_base_/models/deeplabv3_r50-d8.py',
    './_base_/scenes_segmentation.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]

# Per-process BN rather than mmseg's SyncBN default: it runs the same in one CPU process and in
# CPU (gloo) launches. On GPUs, `sync_bn = 'torch'` in a derived config synchronises it.
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(160, 160)),
    pretrained=None,
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(num_classes=11, channels=256, norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=11, norm_cfg=norm_cfg))

max_iters = 8000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=2))
