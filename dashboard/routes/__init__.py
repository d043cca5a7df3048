"""Routers by resource: the page, cameras, alerts, WebRTC."""
