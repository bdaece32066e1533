# CWD (Shu et al., ICCV 2021) on the five FPN levels of RetinaNet (R-50 teacher -> R-18 student,
# texture scenes): each channel's spatial softmax matched by KL, tau 1, weight 10 per level, as
# MMRazor's CWD COCO detection configs (see mmdiffkd/models/losses/cwd.py).
# Train the teacher first (see the DiffKD config).
_base_ = './diffkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py'

model = dict(
    distill_losses=dict(
        _delete_=True,
        fpn=dict(loss=dict(type='CWD', tau=1.0), student='neck', teacher='neck',
                 index=[0, 1, 2, 3, 4], weight=10.0)))
