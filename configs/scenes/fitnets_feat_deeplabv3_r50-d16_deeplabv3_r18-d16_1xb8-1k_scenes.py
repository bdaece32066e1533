# FitNets (Romero et al., ICLR 2015) on the backbone's last stage (DeepLabV3 R-50-d16 teacher ->
# R-18-d16 student, texture scenes), as MMRazor's (classification) FitNets config computes it: a
# learned 1x1 convolution + BatchNorm + ReLU regressor (MMRazor's ConvModuleConnector) maps the
# student's 512 channels to the teacher's 2048 (8x8 at 128 px), then MMRazor's L2Loss (each
# sample's map flattened and L2-normalised on both sides, squared distance summed, divided by the
# batch size), weight 10. A feature-only baseline next to DiffKD's `feat` block.
#   bash tools/dist_train.sh \
#       configs/scenes/fitnets_feat_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py 1
_base_ = './_base_/distill_deeplabv3_r50-d16_deeplabv3_r18-d16_scenes.py'

model = dict(
    distill_losses=dict(
        feat=dict(loss=dict(type='FitNets', norm=True, relu=True, distance='normalized_l2'),
                  student='backbone.layer4', teacher='backbone.layer4', weight=10.0)))
