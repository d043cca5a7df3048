"""Rules turn tracked detections into alerts; alerts are stored and published."""
