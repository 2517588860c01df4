"""Detection data: COCO loading and validation, transforms, the loader, the synthetic generator."""
