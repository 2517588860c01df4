from __future__ import annotations

import numpy as np
from kslim_runner.data.transforms import (
    AugmentConfig,
    eval_transform,
    random_crop,
    random_expand,
    train_transform,
    yolo_targets,
)


def test_yolo_targets_are_normalised_centre_size_and_padded() -> None:
    box, label = yolo_targets(
        np.array([[10, 20, 30, 60]], np.float32), np.array([2], np.int32), 100, max_boxes=4
    )
    assert box.shape == (4, 4) and label.shape == (4,)
    np.testing.assert_allclose(box[0], [0.2, 0.4, 0.2, 0.4])
    assert label[0] == 2 and not box[1:].any()


def test_flip_only_mirrors_boxes() -> None:
    img = np.zeros((50, 100, 3), np.uint8)
    img[10:20, 5:25] = 255
    aug = AugmentConfig(expand_prob=0, crop_prob=0, flip_prob=1.0, distort_prob=0)
    x, box, _ = train_transform(
        img,
        np.array([[5, 10, 25, 20]], np.float32),
        np.array([0], np.int32),
        100,
        np.random.default_rng(0),
        aug,
    )
    assert x.shape == (3, 100, 100) and x.dtype == np.float32
    cx, cy, w, h = box[0]
    np.testing.assert_allclose([cx * 100, w * 100], [85, 20], atol=1e-4)  # x in 75..95 after the flip
    np.testing.assert_allclose([cy * 100, h * 100], [30, 20], atol=1e-4)  # y doubled by the resize


def test_expand_and_crop_keep_boxes_on_their_pixels() -> None:
    rng = np.random.default_rng(1)
    img = np.zeros((60, 60, 3), np.uint8)
    img[10:30, 20:40] = 200
    boxes = np.array([[20, 10, 40, 30]], np.float32)
    for _ in range(20):
        big, b = random_expand(img, boxes, rng, 2.0)
        x1, y1, x2, y2 = b[0].astype(int)
        assert (big[y1:y2, x1:x2] == 200).all()
        cut, cb, lab = random_crop(big, b, np.array([1], np.int32), rng)
        assert len(cb) == len(lab) == 1
        x1, y1, x2, y2 = cb[0].astype(int)
        assert 0 <= x1 < x2 <= cut.shape[1] and 0 <= y1 < y2 <= cut.shape[0]
        assert (cut[y1:y2, x1:x2] == 200).all()


def test_eval_transform_reports_what_the_exported_model_needs() -> None:
    img = np.zeros((80, 160, 3), np.uint8)
    x, im_shape, scale = eval_transform(img, 96)
    assert x.shape == (3, 96, 96)
    np.testing.assert_allclose(im_shape, [96, 96])
    np.testing.assert_allclose(scale, [96 / 80, 96 / 160])
