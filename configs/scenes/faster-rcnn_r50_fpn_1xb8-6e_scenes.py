# Teacher for the two-stage detection demo: Faster R-CNN, ResNet-50 + FPN, trained from scratch
# (no weights can be downloaded) on the texture scenes (10 classes, 128 px), sized for 2 CPU
# cores like the RetinaNet demo: FPN / RPN / RoI features 128 wide (mmdet: 256), a 2-fc box head
# of 256 (mmdet: 1024), fewer proposals and sampled RoIs for 128 px images, 6 epochs.
#   python tools/make_scenes.py --out data/scenes
#   bash tools/dist_train.sh configs/scenes/faster-rcnn_r50_fpn_1xb8-6e_scenes.py 1
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './_base_/scenes_detection.py',
    'mmdet::_base_/default_runtime.py',
    './_base_/schedule_det_6e.py',
]

model = dict(
    # From scratch: no pretrained weights, every stage trains, BN statistics are learnt.
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(out_channels=128),
    rpn_head=dict(
        in_channels=128,
        feat_channels=128,
        # Items are 13-51 px at 128 px: the smallest anchors are 16 px at stride 4 (COCO's 32).
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, fc_out_channels=256, num_classes=10)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=3, max_keep_ckpts=1))
