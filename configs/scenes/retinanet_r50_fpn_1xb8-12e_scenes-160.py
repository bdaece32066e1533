# Teacher for the detection demo: RetinaNet, ResNet-50 + FPN, trained from scratch (no weights
# can be downloaded) on the 160x160 texture scenes, 10 classes.
#   python tools/make_scenes.py --out data/scenes
#   bash tools/dist_train.sh configs/scenes/retinanet_r50_fpn_1xb8-12e_scenes-160.py 1
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './_base_/scenes_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

model = dict(
    # From scratch: no pretrained weights, every stage trains, BN statistics are learnt
    # (norm_eval=True would freeze BN at its initial mean 0 / var 1).
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None),
    bbox_head=dict(
        num_classes=10,
        # Items are 16-64 px: the smallest anchors are 16 px at stride 8 (COCO's are 32 px).
        anchor_generator=dict(octave_base_scale=2)))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(max_keep_ckpts=2))
# Learning rate tuned for 1 process x 8 images; auto_scale_lr rescales for other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=8)
