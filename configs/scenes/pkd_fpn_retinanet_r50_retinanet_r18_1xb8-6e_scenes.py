# PKD (Cao et al., NeurIPS 2022) on the five FPN levels of RetinaNet (R-50 teacher -> R-18
# student): the baseline the detection demo compares DiffKD with. Loss weight 10 per level, as
# MMRazor's PKD RetinaNet X101 -> R50 COCO config.
# Train the teacher first (see the DiffKD config).
_base_ = './diffkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py'

model = dict(
    distill_losses=dict(
        _delete_=True,
        fpn=dict(loss=dict(type='PKD'), student='neck', teacher='neck', index=[0, 1, 2, 3, 4],
                 weight=10.0)))
