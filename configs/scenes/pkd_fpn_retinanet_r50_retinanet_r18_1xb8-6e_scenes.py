# PKD (Cao et al., NeurIPS 2022) on the five FPN levels of RetinaNet (R-50 teacher -> R-18
# student): the baseline the detection demo compares DiffKD with. Loss weight 100 per level,
# chosen on the hold-out split with the same tuning budget as DiffKD (4 trials: 3, 10 - MMRazor's
# PKD RetinaNet X101 -> R50 COCO value -, 30, 100; docs/detection.md).
_base_ = './_base_/distill_retinanet_r50_retinanet_r18_scenes.py'

model = dict(
    distill_losses=dict(
        fpn=dict(loss=dict(type='PKD'), student='neck', teacher='neck', index=[0, 1, 2, 3, 4],
                 weight=100.0)))
