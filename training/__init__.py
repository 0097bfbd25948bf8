"""slimtext training: models, online low-rank compression, CALR, ONNX export (needs torch)."""
