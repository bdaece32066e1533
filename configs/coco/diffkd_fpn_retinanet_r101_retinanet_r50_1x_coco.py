# DiffKD on the five FPN levels, COCO, RetinaNet ResNet-101 -> ResNet-50, mmdet's 1x schedule
# (8 GPUs x 2 images, SGD lr 0.01, 12 epochs, lr x0.1 at epochs 8 and 11): the student
# experiment is mmdet's own retinanet_r50_fpn_1x_coco, unchanged apart from the `model` block.
# The teacher is mmdet's model-zoo RetinaNet R-101-FPN 1x (box AP 38.5 in mmdet's metafile; the
# student alone: 36.5). Both FPNs are 256 wide: one DiffKD module per level (3x3 denoiser, MSE,
# 5 DDIM steps, weight 1 each; not tuned on COCO here). `share=True` makes one module serve
# the five levels: --cfg-options model.distill_losses.fpn.share=True
#   bash tools/dist_train.sh configs/coco/diffkd_fpn_retinanet_r101_retinanet_r50_1x_coco.py 8
# Data: mmdet's data/coco layout. The teacher checkpoint is downloaded once by MMEngine (loaded
# with weights_only=True); the student's ImageNet ResNet-50 comes from torchvision as in mmdet.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
        'retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth'),
    # Shapes are inferred from a fake 256x256 image (a multiple of the largest stride, 128).
    dry_run=dict(input_size=(256, 256)),
    distill_losses=dict(
        fpn=dict(loss=dict(type='DiffKD', kernel_size=3, inference_steps=5),
                 student='neck', teacher='neck', index=[0, 1, 2, 3, 4], share=False,
                 weight=1.0)))
