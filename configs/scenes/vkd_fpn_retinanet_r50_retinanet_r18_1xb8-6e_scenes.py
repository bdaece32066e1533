# VkD (Miles et al., CVPR 2024) on the five FPN levels of RetinaNet (R-50 teacher -> R-18
# student, texture scenes), the dense-feature variant of the authors' detection code: an
# orthogonal 1x1 projection per level, both maps standardised per channel over batch and
# positions (`normalize='channel'`), smooth-L1, weight 4 (their ViDT setting). Their per-channel
# scale and bias after the projection is cancelled by the per-channel standardisation, so it is
# left out (`affine=True` is refused with 'channel'). `orthogonal_map='cayley'`: the orthogonal
# weight is recomputed every step, and Cayley is the cheapest of PyTorch's maps on CPU.
_base_ = './_base_/distill_retinanet_r50_retinanet_r18_scenes.py'

model = dict(
    distill_losses=dict(
        fpn=dict(loss=dict(type='VkD', normalize='channel', orthogonal_map='cayley'),
                 student='neck', teacher='neck', index=[0, 1, 2, 3, 4], weight=4.0)))
