"""The plain FastAPI app, the way the FastAPI docs teach it: a lifespan that loads the model
("Lifespan Events" uses an ML model as its example), pydantic request and response models, and a sync
`def` route, which FastAPI runs in its thread pool because onnxruntime does not `await`.

    SLIMTEXT_PEER_MODEL=models/sst2-dan-lowrank uvicorn bench.peers.fastapi_app:app --port 8001
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from bench.peers.model import classify, load_model

ml_models = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    ml_models["classifier"] = load_model()
    yield
    ml_models.clear()


app = FastAPI(lifespan=lifespan)


class ClassifyRequest(BaseModel):
    texts: list[str]


class Prediction(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]


class ClassifyResponse(BaseModel):
    predictions: list[Prediction]


@app.post("/classify")
def classify_texts(request: ClassifyRequest) -> ClassifyResponse:
    return ClassifyResponse(predictions=classify(ml_models["classifier"], request.texts))
