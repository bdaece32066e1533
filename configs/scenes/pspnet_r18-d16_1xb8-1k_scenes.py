# Student alone, second architecture of the segmentation demo: PSPNet, ResNet-18-d16 (ResNetV1c),
# trained from scratch on the texture scenes with the DeepLabV3 teacher's schedule. The backbone,
# data and schedule are the DeepLabV3 R-18 student's; only the decode head differs: mmseg's
# PSPHead (pyramid pooling 1/2/3/6 on the 8x8 last-stage map at 128 px), widths as in mmseg's
# PSPNet R-18-d8 Cityscapes config.
#   bash tools/dist_train.sh configs/scenes/pspnet_r18-d16_1xb8-1k_scenes.py 1
_base_ = './deeplabv3_r18-d16_1xb8-1k_scenes.py'

# Written out, not {{_base_.norm_cfg}}: configs inherited from `mmseg::` carry a `_scope_` key in
# every typed dict, which BatchNorm would receive as an argument.
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    decode_head=dict(
        _delete_=True,
        type='PSPHead',
        in_channels=512,
        in_index=3,
        channels=128,
        pool_scales=(1, 2, 3, 6),
        dropout_ratio=0.1,
        num_classes=11,
        norm_cfg=norm_cfg,
        align_corners=False,
        # The class-weighted cross-entropy of the DeepLabV3 configs (background 0.1).
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         class_weight=[0.1] + [1.0] * 10)))
