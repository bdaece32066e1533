# FitNets (Romero et al., ICLR 2015) on the five FPN levels of RetinaNet (R-50 teacher -> R-18
# student, texture scenes): a learned 1x1 regressor per level (128 -> 128), MSE, weight 1 per
# level (not tuned here). A feature baseline next to DiffKD's and PKD's `fpn` blocks.
_base_ = './_base_/distill_retinanet_r50_retinanet_r18_scenes.py'

model = dict(
    distill_losses=dict(
        fpn=dict(loss=dict(type='FitNets'), student='neck', teacher='neck',
                 index=[0, 1, 2, 3, 4], weight=1.0)))
