# DiffKD, ImageNet ResNet-34 -> ResNet-18 with the paper's B1 recipe (Huang et al., NeurIPS 2023,
# Table 1; authors' README: 69.76 -> 72.20 top-1 with a 73.31 teacher). mmpretrain's
# resnet18_8xb32_in1k *is* B1: SGD lr 0.1, momentum 0.9, weight decay 1e-4, 8 GPUs x 32 = 256
# images per step, 100 epochs, lr x0.1 at epochs 30, 60 and 90.
# DiffKD on `layer4` (512 -> 512 channels, 7x7) through a 1024-channel autoencoder, and on the
# logits (kernel-1 denoiser, KL), each weighted 1 next to the cross-entropy, 5 DDIM steps.
#   bash tools/dist_train.sh configs/imagenet/diffkd_feat-logits_resnet34_resnet18_8xb32_in1k.py 8
# The teacher is mmpretrain's ResNet-34 (73.62 top-1 in its model zoo; the paper used
# torchvision's, 73.31).
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmpretrain::resnet/resnet34_8xb32_in1k.py',
        checkpoint='https://download.openmmlab.com/mmclassification/v0/resnet/'
        'resnet34_8xb32_in1k_20210831-f257d4e6.pth'),
    dry_run=dict(input_size=(224, 224), in_channels=3),
    distill_losses=dict(
        feat=dict(loss=dict(type='DiffKD', kernel_size=3, use_ae=True, ae_channels=1024,
                            inference_steps=5),
                  student='backbone.layer4', teacher='backbone.layer4', weight=1.0),
        logits=dict(loss=dict(type='DiffKD', kernel_size=1, inference_steps=5),
                    student='head.fc', teacher='head.fc', weight=1.0)),
)
