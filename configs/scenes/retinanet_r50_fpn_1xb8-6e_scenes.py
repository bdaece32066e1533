# Teacher for the detection demo: RetinaNet, ResNet-50 + FPN, trained from scratch (no weights
# can be downloaded) on the texture scenes (10 classes, 128 px), sized for 2 CPU cores: FPN and
# head 128 wide with 2 stacked convs instead of mmdet's 256 / 4, 6 epochs (1500 iterations on
# the default 2000-image set).
#   python tools/make_scenes.py --out data/scenes
#   bash tools/dist_train.sh configs/scenes/retinanet_r50_fpn_1xb8-6e_scenes.py 1
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './_base_/scenes_detection.py',
    'mmdet::_base_/default_runtime.py',
    './_base_/schedule_det_6e.py',
]

model = dict(
    # From scratch: no pretrained weights, every stage trains, BN statistics are learnt
    # (norm_eval=True would freeze BN at its initial mean 0 / var 1).
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(out_channels=128),
    bbox_head=dict(
        num_classes=10,
        in_channels=128,
        feat_channels=128,
        stacked_convs=2,
        # Items are 13-51 px at 128 px: the smallest anchors are 16 px at stride 8 (COCO's 32).
        anchor_generator=dict(octave_base_scale=2)))

default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=3, max_keep_ckpts=1))
