# DiffKD + PKD on the five FPN levels of RetinaNet (R-50 teacher -> R-18 student), texture
# scenes, the student's 6-epoch CPU schedule: the DiffKD config plus a baseline feature loss in
# the same `distill_losses` (each declaration records the same neck outputs; one hook serves
# both). PKD (Pearson correlation, Cao et al. 2022) standardises each channel, so it matches the
# pattern of the teacher's level and DiffKD its values after denoising. PKD's weight is that of
# MMRazor's PKD RetinaNet config (10 per level; its Faster R-CNN config uses 6), as in the
# PKD-only config. For FitNets instead: fpn_fitnets=dict(loss=dict(type='FitNets'), ...).
# Logged: loss_fpn_<level>_distill / _diffusion (DiffKD) and loss_fpn_pkd_<level> (PKD).
#   bash tools/dist_train.sh configs/scenes/retinanet_r50_fpn_1xb8-6e_scenes.py 1
#   bash tools/dist_train.sh configs/scenes/diffkd-pkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py 1
_base_ = './diffkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py'

model = dict(
    distill_losses=dict(
        fpn_pkd=dict(loss=dict(type='PKD'), student='neck', teacher='neck',
                     index=[0, 1, 2, 3, 4], weight=10.0)))
