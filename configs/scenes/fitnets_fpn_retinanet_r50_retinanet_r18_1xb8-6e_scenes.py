# FitNets (Romero et al., ICLR 2015) on the five FPN levels of RetinaNet (R-50 teacher -> R-18
# student, texture scenes): a learned 1x1 regressor per level (128 -> 128), MSE, weight 1 per
# level (not tuned here). A feature baseline next to DiffKD's and PKD's `fpn` blocks.
# Train the teacher first (see the DiffKD config).
_base_ = './diffkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py'

model = dict(
    distill_losses=dict(
        _delete_=True,
        fpn=dict(loss=dict(type='FitNets'), student='neck', teacher='neck',
                 index=[0, 1, 2, 3, 4], weight=1.0)))
