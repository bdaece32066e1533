# The scenes detection distillation base: the RetinaNet R-18 student's experiment (6-epoch CPU
# schedule), a frozen RetinaNet R-50 teacher; no loss. Each method config adds its block.
# Train the teacher first (its checkpoint path below is tools/train.py's default work dir):
#   bash tools/dist_train.sh configs/scenes/retinanet_r50_fpn_1xb8-6e_scenes.py 1
_base_ = '../retinanet_r18_fpn_1xb8-6e_scenes.py'

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{fileDirname}}/../retinanet_r50_fpn_1xb8-6e_scenes.py',
        checkpoint='work_dirs/retinanet_r50_fpn_1xb8-6e_scenes/epoch_6.pth'),
    distill_losses=dict())
