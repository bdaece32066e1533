# VkD (Miles et al., CVPR 2024) on the backbone's last stage (DeepLabV3 R-50-d16 teacher ->
# R-18-d16 student, texture scenes), the dense-feature variant: an orthogonal 1x1 projection
# 512 -> 2048 (norm-preserving: the student map is embedded, not rescaled), both maps
# standardised per channel over batch and the 8x8 positions (`normalize='channel'`), smooth-L1,
# weight 4 (the authors' ViDT detection setting; they released no segmentation one). Their ViDT
# code also has a per-channel scale and bias after the projection, which the per-channel
# standardisation cancels, so it is left out (`affine=True` is refused with 'channel'). The
# orthogonal weight is recomputed every step: `orthogonal_map='cayley'` takes about 1.8 s per
# step for 512 -> 2048 on one CPU thread, PyTorch's default (householder) about 38 s (measured
# on the project's 2-core machine; see docs/segmentation.md).
#   bash tools/dist_train.sh \
#       configs/scenes/vkd_feat_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py 1
_base_ = './_base_/distill_deeplabv3_r50-d16_deeplabv3_r18-d16_scenes.py'

model = dict(
    distill_losses=dict(
        feat=dict(loss=dict(type='VkD', normalize='channel', orthogonal_map='cayley'),
                  student='backbone.layer4', teacher='backbone.layer4', weight=4.0)))
