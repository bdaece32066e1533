# The scenes segmentation distillation base: the DeepLabV3 R-18-d16 student's experiment
# (1000-iteration CPU schedule), a frozen DeepLabV3 R-50-d16 teacher; no loss. Each method config
# adds its block. Train the teacher first (its checkpoint path below is tools/train.py's default):
#   bash tools/dist_train.sh configs/scenes/deeplabv3_r50-d16_1xb8-1k_scenes.py 1
_base_ = '../deeplabv3_r18-d16_1xb8-1k_scenes.py'

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='{{fileDirname}}/../deeplabv3_r50-d16_1xb8-1k_scenes.py',
        checkpoint='work_dirs/deeplabv3_r50-d16_1xb8-1k_scenes/iter_1000.pth'),
    distill_losses=dict())
