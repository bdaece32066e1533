# VkD (Miles et al., CVPR 2024), classification variant: the pooled pre-logit features (`neck`,
# global average pooling, a 1-tuple: index 0) of student (32) and teacher (128), an orthogonal
# projection 32 -> 128, the teacher's feature layer-normalised per sample, smooth-L1, weight 1.
# The authors' classification objective also adds KL (T = 1) on the DeiT student's distillation
# head (here a `KD` declaration with tau=1 on that head). This CNN student has no distillation
# head, so that term is left out: the comparison with the paper is not like for like
# (docs/methods.md).
_base_ = ['./_base_/distill_resnet18-w16_resnet18-w4.py']

model = dict(
    distill_losses=dict(
        feat=dict(loss=dict(type='VkD', normalize='sample'), student='neck', teacher='neck',
                  index=0, weight=1.0)),
)
