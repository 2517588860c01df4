"""In-training evaluation: the Python model (before export) on the same images and metric, to
cross-check the exported artifact."""

from __future__ import annotations

import numpy as np
import paddle

from kslim_runner.data.coco import CocoIndex, read_image
from kslim_runner.data.transforms import eval_transform
from kslim_runner.measure.coco_eval import coco_stats
from kslim_runner.models.base import Detector


@paddle.no_grad()
def evaluate_dygraph(
    detector: Detector, index: CocoIndex, *, batch_size: int = 8, score_threshold: float = 0.01
) -> dict:
    detector.eval()
    size = detector.config.input_size
    dets: list[dict] = []
    for start in range(0, len(index), batch_size):
        rows = list(range(start, min(start + batch_size, len(index))))
        samples = [eval_transform(read_image(index.files[i]), size) for i in rows]
        image, im_shape, scale = (paddle.to_tensor(np.stack(col)) for col in zip(*samples, strict=True))
        boxes, nums = detector.postprocess(detector(image), im_shape, scale)
        boxes_np, k = boxes.numpy().reshape(-1, 6), 0
        for row, n in zip(rows, nums.numpy().tolist(), strict=True):
            for cls, score, x1, y1, x2, y2 in boxes_np[k : k + n].tolist():
                if 0 <= int(cls) < len(index.category_ids) and score >= score_threshold:
                    dets.append(
                        {
                            "image_id": index.image_ids[row],
                            "category_id": index.category_ids[int(cls)],
                            "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": score,
                        }
                    )
            k += n
    return coco_stats(index.annotations, dets)
