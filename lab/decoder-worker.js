// The VAE decoder in a worker of its own, so that the page can decode (and draw) one step's guess
// while the UNet computes the next: on two cores the two overlap instead of taking turns.
// Messages: {id, type: "load", bytes} -> {id}; {id, type: "decode", z, n, shape} -> {id, image}.
import * as ort from "./ort/ort.wasm.min.mjs";

ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
ort.env.wasm.numThreads = 1;
let session;

onmessage = async ({ data }) => {
  try {
    if (data.type === "load") {
      session = await ort.InferenceSession.create(data.bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
      postMessage({ id: data.id });
    } else {
      const out = await session.run({ z: new ort.Tensor("float32", data.z, [data.n, ...data.shape]) });
      const image = out.image.data;
      postMessage({ id: data.id, image }, [image.buffer]);
    }
  } catch (e) {
    postMessage({ id: data.id, error: String(e?.message ?? e) });
  }
};
