"""MLServer's documented custom runtime: an MLModel with `load` and `predict` over the Open Inference Protocol
(v2). The driver writes settings.json and model-settings.json (implementation = this class, adaptive batching on:
`max_batch_size` / `max_batch_time`) and runs `mlserver start <folder>`.

Request: {"inputs": [{"name": "text", "shape": [N], "datatype": "BYTES", "data": [...]}]};
reply outputs `label` (BYTES [N]) and `probabilities` (FP32 [N, C], columns in the model's label order).
"""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse

from bench.peers.model import load_model


class SlimtextRuntime(MLModel):
    async def load(self) -> bool:
        self._model = load_model()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        texts = StringCodec.decode_input(payload.inputs[0])
        probs = self._model.predict(texts).probs
        labels = [self._model.labels[i] for i in probs.argmax(1).tolist()]
        return InferenceResponse(model_name=self.name, outputs=[
            StringCodec.encode_output("label", labels), NumpyCodec.encode_output("probabilities", probs)])
