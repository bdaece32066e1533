# Texture scenes (tools/make_scenes.py) as an mmseg data set: 11 classes (0 background,
# 1..10 Fashion-MNIST), 160x160 PNG images with PNG label maps. Generate the data first:
#   python tools/make_scenes.py --out data/scenes
custom_imports = dict(imports=['mmdiffkd.datasets'], allow_failed_imports=False)
dataset_type = 'mmdiffkd.ScenesSegDataset'
data_root = 'data/scenes/'
# Scenes are generated at 160 px and trained at 128 px so the demo fits 2 CPU cores.
crop_size = (128, 128)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    # Scales 1.0-1.5 of the 128 px test size, never smaller: a crop never needs padding, so no
    # label is the ignore value 255 (mmseg 1.2.2's class-weighted cross-entropy crashes on it) and
    # 28 px items do not shrink to a few pixels of an 8x8 output-stride-16 map.
    dict(type='RandomResize', scale=crop_size, ratio_range=(1.0, 1.5), keep_ratio=True),
    # Background covers most pixels, so no cat_max_ratio: it would reject almost every crop.
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train/images', seg_map_path='train/labels'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val/images', seg_map_path='val/labels'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
