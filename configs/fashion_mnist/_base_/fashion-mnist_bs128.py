# Fashion-MNIST (60k train / 10k test, 1x28x28, 10 classes) through mmpretrain's dataset.
# `mmdiffkd.FashionMNIST` un-gzips Debian's dataset-fashion-mnist into `data_root` once and
# never downloads. `indices=N` (an int) trains on the first N images (the release is shuffled,
# so they are near class-balanced); the demo uses it to fit its time budget.
dataset_type = 'mmdiffkd.FashionMNIST'
data_root = 'data/fashion_mnist'

data_preprocessor = dict(
    num_classes=10,
    # Fashion-MNIST pixel mean / std (0.2860, 0.3530) x 255, one grey channel.
    mean=[72.94],
    std=[90.02],
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=500,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
