# DiffKD, ImageNet Swin-L -> Swin-T, the layers of the authors' Swin recipe (Huang et al.,
# "Knowledge Diffusion for Distillation", NeurIPS 2023): their released classification code
# (https://github.com/hunto/image_classification_sota, lib/models/losses/kd_loss.py, KD_MODULES)
# distils Swin's final norm (tokens reshaped to a square map) and its head, for
# timm_swin_large_patch4_window7_224 (1536 channels) and timm_swin_tiny_patch4_window7_224 (768).
#   feat    DiffKD on the final norm's tokens, (B, 49, 768) -> (B, 768, 7, 7) and (B, 49, 1536)
#           -> (B, 1536, 7, 7), through a 1024-channel autoencoder (as in every released config);
#   logits  DiffKD on the logits (kernel-1 denoiser, KL with tau 1); each weighted 1 next to the
#           cross-entropy, 5 DDIM steps.
#   bash tools/dist_train.sh \
#       configs/imagenet/diffkd_feat-logits_swin-large_swin-tiny_16xb64_in1k.py 16
# The teacher is mmpretrain's Swin-L pre-trained on ImageNet-21k and fine-tuned on ImageNet-1k
# (86.24 top-1 in mmpretrain 1.2.0's metafile). The schedule is mmpretrain's own Swin-T one
# (AdamW, 16 x 64 images, 300 epochs, Mixup / CutMix): the paper's strong-strategy schedule is not
# reproduced (not verified), so numbers do not compare with the paper's.
_base_ = ['mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py']

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(
        config='mmpretrain::swin_transformer/swin-large_16xb64_in1k.py',
        checkpoint='https://download.openmmlab.com/mmclassification/v0/swin-transformer/convert/'
        'swin_large_patch4_window7_224_22kto1k-5f0996db.pth'),
    dry_run=dict(input_size=(224, 224), in_channels=3),
    distill_losses=dict(
        # backbone.norm3 normalises the last stage's tokens (B, H * W, C), before the backbone
        # reshapes them into its (B, C, H, W) output
        feat=dict(loss=dict(type='DiffKD', kernel_size=3, use_ae=True, ae_channels=1024,
                            inference_steps=5),
                  student=dict(path='backbone.norm3', transform='tokens_to_map'),
                  weight=1.0),
        logits=dict(loss=dict(type='DiffKD', kernel_size=1, inference_steps=5),
                    student='head.fc', teacher='head.fc', weight=1.0)),
)
