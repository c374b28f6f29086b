// Seeded N(0, 1) noise for the page: a seed gives the same pictures in every browser, but not
// torch's (its Mersenne Twister and its Box-Muller differ). To reproduce a Python run, pass its
// starting noise to lab.generate({noise}) instead.

/** A generator of uniform floats in (0, 1) from a 32-bit seed (mulberry32). */
function uniform(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
}

/** randn(k) -> Float32Array of k standard normal draws (Box-Muller), continuing one stream per seed. */
export function normalStream(seed) {
  const u = uniform(Number(BigInt.asUintN(32, BigInt(seed) * 2654435761n + 1013904223n)));
  return (k) => {
    const out = new Float32Array(k);
    for (let i = 0; i < k; i += 2) {
      const r = Math.sqrt(-2 * Math.log(u())), th = 2 * Math.PI * u();
      out[i] = r * Math.cos(th);
      if (i + 1 < k) out[i + 1] = r * Math.sin(th);
    }
    return out;
  };
}
