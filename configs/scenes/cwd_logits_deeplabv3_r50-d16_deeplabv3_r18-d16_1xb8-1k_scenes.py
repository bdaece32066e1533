# CWD (Shu et al., ICCV 2021) on the decode head's class logits, the baseline the segmentation
# demo compares DiffKD with: channel-wise (spatial) softmax KL at tau 1, loss weight 5, as
# MMRazor's CWD PSPNet Cityscapes config. Add the DiffKD config's blocks to combine the two.
_base_ = './diffkd_feat-logits_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py'

model = dict(
    distill_losses=dict(
        _delete_=True,
        cwd=dict(loss=dict(type='CWD', tau=1.0),
                 student='decode_head.conv_seg', teacher='decode_head.conv_seg', weight=5.0)))
