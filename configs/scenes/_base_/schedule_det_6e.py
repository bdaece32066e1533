# Detection schedule of the scenes demo (both teachers; the students inherit it): 6 epochs of
# one process x 8 images, SGD lr 0.01 with 300 warm-up iterations, x0.1 at epochs 4 and 5,
# gradient clipping at 35, validation every 3 epochs (the configs set the hooks: MMEngine
# refuses a key, here `default_hooks`, that two bases both define).
max_epochs = 6
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=3)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=300),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[4, 5],
         gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
# Learning rate tuned for 1 process x 8 images; auto_scale_lr rescales for other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=8)
