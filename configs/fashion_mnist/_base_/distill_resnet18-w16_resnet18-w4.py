# The Fashion-MNIST distillation base: the width-4 student's experiment, a frozen width-16 teacher
# and the dry-run input; no loss. Each method config adds its `distill_losses` block.
# The teacher checkpoint is what `tools/train.py` writes for the teacher config
# (`python tools/train.py configs/fashion_mnist/resnet18-w16_1xb128_fashion-mnist.py`);
# `tools/demo.py` and the benchmarks pass their own cached one.
_base_ = ['../resnet18-w4_1xb128_fashion-mnist.py']

model = dict(
    _delete_=True,
    type='mmdiffkd.Distiller',
    student={{_base_.model}},
    teacher=dict(config='{{fileDirname}}/../resnet18-w16_1xb128_fashion-mnist.py',
                 checkpoint='work_dirs/resnet18-w16_1xb128_fashion-mnist/epoch_30.pth'),
    dry_run=dict(input_size=(28, 28), in_channels=1),
    distill_losses=dict(),
)
