# RTK (Yang et al., arXiv 2206.12788; this project's reading of the abstract, unverified):
# attention from the student's `backbone.layer4` positions to the teacher's representative keys
# (the top half of its 16 positions), pairwise matching, the defaults of docs/methods.md
# (embed 128, key_ratio 0.5, 'global' keys), weight 1.
_base_ = ['./_base_/distill_resnet18-w16_resnet18-w4.py']

model = dict(
    distill_losses=dict(
        feat=dict(loss=dict(type='RTK', embed_channels=128, key_ratio=0.5,
                            key_selection='global', target='pairwise'),
                  student='backbone.layer4', teacher='backbone.layer4', weight=1.0)),
)
