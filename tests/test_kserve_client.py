"""The KServe Python SDK's REST v2 client (kserve.InferenceRESTClient) does one infer against a real server.

`kserve` is not in the dev extra: kserve 0.21 pins protobuf<7, pandas<3 and psutil<6 and pulls kubernetes,
cryptography and grpcio-tools, more than a test client is worth here. The test runs wherever kserve is
importable (`pip install kserve`), and is skipped otherwise."""

import asyncio

import httpx
import numpy as np
import pytest

kserve = pytest.importorskip("kserve", reason="kserve is not installed (not part of the dev extra)")

TEXTS = ["a gorgeous , witty , seductive movie .", "a dull , lifeless and predictable mess ."]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_rest_client_infer(server, binary):
    async def infer():
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            inp = kserve.InferInput("text", [len(TEXTS)], "BYTES")
            inp.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_), binary_data=binary)
            request = kserve.InferRequest(model_name="sst2-dan-lowrank", infer_inputs=[inp], request_id="k1")
            return await client.infer(server.url, request, model_name="sst2-dan-lowrank")
        finally:
            await client._client.aclose()

    response = asyncio.run(infer())
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    native = httpx.post(f"{server.url}/classify", json={"texts": TEXTS}).json()["predictions"]
    assert [x.decode() if isinstance(x, bytes) else x for x in outputs["label"]] == [p["label"] for p in native]
    np.testing.assert_allclose(outputs["probabilities"][:, 1], [p["probabilities"]["positive"] for p in native],
                               atol=1e-6)
