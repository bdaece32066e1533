# CWD (Shu et al., ICCV 2021) on the decode head's class logits, the baseline the segmentation
# demo compares DiffKD with: channel-wise (spatial) softmax KL at tau 1, loss weight 5, as
# MMRazor's CWD PSPNet Cityscapes config.
_base_ = './_base_/distill_deeplabv3_r50-d16_deeplabv3_r18-d16_scenes.py'

model = dict(
    distill_losses=dict(
        cwd=dict(loss=dict(type='CWD', tau=1.0),
                 student='decode_head.conv_seg', teacher='decode_head.conv_seg', weight=5.0)))
