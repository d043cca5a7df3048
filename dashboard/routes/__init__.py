"""Routers by resource: the page, cameras, alerts, scans, WebRTC."""
