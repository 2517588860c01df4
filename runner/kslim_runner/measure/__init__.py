"""Measurements on an exported inference model: COCO AP, GFLOPs/params/size, latency."""
