"""Detection: a YOLO model and a tracker per camera turn frames into tracked detections."""
