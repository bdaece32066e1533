# VkD, ImageNet DeiT-S -> DeiT-Ti in the authors' DeiT form (Miles, Elezi, Deng, "VkD: Improving
# Knowledge Distillation using Orthogonal Projections", CVPR 2024; the authors' classification
# objective as docs/methods.md describes it): next to the student's cross-entropy,
#   feat     VkD: the student's patch tokens (class and distillation tokens dropped) mean-pooled,
#            mapped 192 -> 384 by an orthogonal projection, smooth-L1 against the teacher's pooled
#            feature (its class token after the final norm), standardised per sample; weight 1;
#   head_kl  KD with tau = 1 (= KL(T = 1), batchmean) on the student's distillation head against
#            the teacher's logits; weight 1.
#   bash tools/dist_train.sh \
#       configs/imagenet/vkd_feat-head_deit-small_deit-tiny-distilled_4xb256_in1k.py 4
# Not like for like with the paper: its DeiT teacher is a RegNetY-160 (not in mmpretrain's model
# zoo); here it is mmpretrain's DeiT-S (80.69 top-1 in mmpretrain 1.2.0's metafile). The schedule
# is mmpretrain's own DeiT-Ti one (AdamW, 4 x 256 images, 300 epochs), unchanged.
# mmpretrain 1.2.0's DeiTClsHead warns that it "cannot train the distilled version DeiT": in
# training it computes its cross-entropy on the average of its class and distillation heads'
# logits (so both heads learn from the labels), and this config adds the KL term on the
# distillation head alone; the authors train CE on the class head and KL on the distillation head
# apart. Prediction (mmpretrain's) averages the two heads, as in DeiT.
_base_ = ['mmpretrain::deit/deit-tiny-distilled_4xb256_in1k.py']

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmpretrain::deit/deit-small_4xb256_in1k.py',
        checkpoint='https://download.openmmlab.com/mmclassification/v0/deit/'
        'deit-small_pt-4xb256_in1k_20220218-9425b9bb.pth'),
    dry_run=dict(input_size=(224, 224), in_channels=3),
    distill_losses=dict(
        # backbone.ln1 (the final norm) returns every token: (B, 2 + 196, 192)
        feat=dict(loss=dict(type='VkD', normalize='sample'),
                  student=dict(path='backbone.ln1',
                               transform=[dict(type='drop_tokens', n=2), 'mean_tokens']),
                  teacher=dict(path='backbone', index=-1),   # (B, 384) class token
                  weight=1.0),
        head_kl=dict(loss=dict(type='KD', tau=1.0), student='head.layers.head_dist',
                     teacher='head.layers.head', weight=1.0)),
)
