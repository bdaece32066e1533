# DiffKD, ImageNet ResNet-50 -> MobileNet. The paper's student is MobileNetV1 (70.13 -> 73.24
# in the authors' README, "to be reproduced"); mmpretrain 1.2.0 has no MobileNetV1, so the
# student here is its MobileNetV2 1.0x, trained with the B1 recipe of the ResNet-34 pair
# (SGD lr 0.1, weight decay 1e-4, 256 images per step, 100 epochs, lr x0.1 every 30) instead of
# mmpretrain's own MobileNetV2 schedule. Numbers are therefore not comparable to the paper's.
# DiffKD on the last feature stage (student `backbone.conv2`, 1280 channels, 7x7; teacher
# `layer4`, 2048 channels, 7x7) through a 1024-channel autoencoder, and on the logits.
#   bash tools/dist_train.sh \
#       configs/imagenet/diffkd_feat-logits_resnet50_mobilenet-v2_8xb32_in1k.py 8
_base_ = ['mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py']

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmpretrain::resnet/resnet50_8xb32_in1k.py',
        checkpoint='https://download.openmmlab.com/mmclassification/v0/resnet/'
        'resnet50_8xb32_in1k_20210831-ea4938fc.pth'),
    dry_run=dict(input_size=(224, 224), in_channels=3),
    distill_losses=dict(
        feat=dict(loss=dict(type='DiffKD', kernel_size=3, use_ae=True, ae_channels=1024,
                            inference_steps=5),
                  student='backbone.conv2', teacher='backbone.layer4', weight=1.0),
        logits=dict(loss=dict(type='DiffKD', kernel_size=1, inference_steps=5),
                    student='head.fc', teacher='head.fc', weight=1.0)),
)

# B1, as for ResNet-34 -> ResNet-18.
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    _delete_=True, type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)
