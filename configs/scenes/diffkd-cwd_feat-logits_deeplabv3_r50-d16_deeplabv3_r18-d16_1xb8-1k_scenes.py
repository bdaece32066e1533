# DiffKD + CWD in one config (DeepLabV3 R-50-d16 teacher -> R-18-d16 student, texture scenes):
# the DiffKD config's two blocks (`feat` on the backbone's last stage, `logits` per pixel on the
# decode head's class logits) plus CWD's channel-wise spatial-softmax KL on the same logits
# (tau 1, weight 5, as the CWD config). Both read one recorded `conv_seg` output (one hook);
# their losses are logged apart (loss_logits_distill, loss_logits_diffusion, loss_cwd) and
# summed with the cross-entropy.
#   bash tools/dist_train.sh \
#       configs/scenes/diffkd-cwd_feat-logits_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py 1
_base_ = './diffkd_feat-logits_deeplabv3_r50-d16_deeplabv3_r18-d16_1xb8-1k_scenes.py'

model = dict(
    distill_losses=dict(
        cwd=dict(loss=dict(type='CWD', tau=1.0),
                 student='decode_head.conv_seg', teacher='decode_head.conv_seg', weight=5.0)))
