"""`make bench-peers`: slimtext against the serving frameworks a user would pick instead (issue 16).

One small app per peer (fastapi_app, litserve_app, bentoml_app, mlserver_app, ray_app), each serving one exported
model folder with the project's tokenizer and onnxruntime (bench/peers/model.py); the driver is bench/peers/run.py.
"""
