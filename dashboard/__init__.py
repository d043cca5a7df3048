"""The officers' dashboard: FastAPI app, WebRTC live view, alert list over WebSocket."""
