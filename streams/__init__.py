"""Ingest: open cameras (RTSP or files) with PyAV, decode in a thread per camera, stamp frames."""
