"""slimtext service: FastAPI + onnxruntime, no torch."""
