# CWD (Shu et al., ICCV 2021) on the five FPN levels of RetinaNet (R-50 teacher -> R-18 student,
# texture scenes): each channel's spatial softmax matched by KL, tau 1, weight 10 per level, as
# MMRazor's CWD COCO detection configs (see mmdiffkd/models/losses/cwd.py).
_base_ = './_base_/distill_retinanet_r50_retinanet_r18_scenes.py'

model = dict(
    distill_losses=dict(
        fpn=dict(loss=dict(type='CWD', tau=1.0), student='neck', teacher='neck',
                 index=[0, 1, 2, 3, 4], weight=10.0)))
