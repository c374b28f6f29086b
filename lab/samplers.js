// The library's samplers (fmnist_ldm/samplers/*.py, sampling.py, diffusion.py), the same maths in
// JavaScript, one short function each with the equation beside the line that computes it.
// States are Float32Array of n x C x H x W; the coefficients are computed in float64 (as Python's
// floats are) and each result is stored in float32 (as torch's float32 tensors are).
//
// Notation (Ho et al. 2020): abar_t = prod_{s<=t} (1 - beta_s), t = 0..T-1, abar_{-1} = 1 (clean);
// alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t).

/** The schedule from manifest.json's alphas_cumprod: abarAt(t), 1 at t = -1 (NoiseSchedule.abar_at). */
export function makeSchedule(alphasCumprod) {
  const abar = Float64Array.from(alphasCumprod);
  return { T: abar.length, abarAt: (t) => (t >= 0 ? abar[t] : 1.0) };
}

/** Python's round(): half to even. */
function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** NoiseSchedule.timesteps: t_i = round(N + i delta) - 1, delta = (N - N/steps) - N, N = t_start + 1
 * ("trailing" spacing, Lin et al. 2024), for i = 0..steps-1, then -1 (clean). */
export function timesteps(T, steps, tStart = T - 1) {
  const n = tStart + 1, delta = (n - n / steps) - n;
  const ts = [];
  for (let i = 0; i < steps; i++) ts.push(roundHalfEven(n + i * delta) - 1);
  return ts.concat([-1]);
}

/** consistency.student_timesteps: `steps` of the teacher's timesteps, evenly by index from the first. */
export function studentTimesteps(teacherTs, steps) {
  const n = teacherTs.length - 1;
  if (!(Number.isInteger(steps) && steps >= 1 && steps <= n)) throw new Error(`steps must be 1 to ${n} for the distilled sampler`);
  return Array.from({ length: steps }, (_, i) => teacherTs[Math.floor((i * n) / steps)]);
}

/** NoiseSchedule.split for v-prediction (Salimans & Ho 2022), per image at abar_t (float32, as torch):
 *   x0 = sqrt(abar) x_t - sqrt(1 - abar) v,   eps = sqrt(1 - abar) x_t + sqrt(abar) v
 * and for eps-prediction: x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar). */
export function split(out, x, abar, prediction) {
  const a = Math.fround(abar), sa = Math.fround(Math.sqrt(a)), s1 = Math.fround(Math.sqrt(Math.fround(1 - a)));
  const x0 = new Float32Array(x.length), eps = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    if (prediction === "v") {
      x0[i] = Math.fround(sa * x[i]) - Math.fround(s1 * out[i]);
      eps[i] = Math.fround(s1 * x[i]) + Math.fround(sa * out[i]);
    } else {
      eps[i] = out[i];
      x0[i] = Math.fround(x[i] - Math.fround(s1 * out[i])) / sa;
    }
  }
  return { x0, eps };
}

/** Classifier-free guidance (Ho & Salimans 2022; sampling.GuidedDenoiser):
 *   out = out_neg + w (out_cond - out_neg). */
export function guide(cond, neg, w) {
  const out = new Float32Array(cond.length);
  for (let i = 0; i < cond.length; i++) out[i] = neg[i] + Math.fround(w * Math.fround(cond[i] - neg[i]));
  return out;
}

/** Whether step t runs the guided, doubled batch: w != 1, t in [lo, hi] (or no interval), and some
 * image asks for a class (Kynkaanniemi et al. 2024: guidance only in a middle interval of t). */
export function guides(t, w, interval, conditional) {
  const inside = !interval || (interval[0] <= t && t <= interval[1]);
  return w !== 1 && inside && conditional;
}

/** DDIM (Song et al. 2021, eq. 12) with eta = 0, from t to t' (abar' = abar_{t'}):
 *   x' = sqrt(abar') x0 + sqrt(1 - abar') eps. */
export function ddimStep(sched, x, x0, eps, t, tNext) {
  const an = sched.abarAt(tNext), c0 = Math.sqrt(an), c1 = Math.sqrt(Math.max(1 - an, 0));
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = c0 * x0[i] + c1 * eps[i];
  return out;
}

/** lambda_t = log(alpha_t / sigma_t) = 0.5 log(abar_t / (1 - abar_t)). */
const logSnrHalf = (abar) => 0.5 * Math.log(abar / (1 - abar));

/** DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), one step; prev = {x0, h} of the last step or null.
 *   h = lambda' - lambda;  D = x0 on the first step, else (1 + 1/(2r)) x0 - 1/(2r) x0_prev, r = h_prev / h;
 *   x' = (sigma' / sigma) x - alpha' (e^{-h} - 1) D;   the last step, to sigma' = 0, is x' = x0.
 * Returns {x, prev}. */
export function dpmpp2mStep(sched, x, x0, t, tNext, prev) {
  if (tNext < 0) return { x: x0, prev: null };
  const a = sched.abarAt(t), an = sched.abarAt(tNext);
  const h = logSnrHalf(an) - logSnrHalf(a);
  const cx = Math.sqrt((1 - an) / (1 - a)), cd = -Math.sqrt(an) * Math.expm1(-h);
  const out = new Float32Array(x.length);
  if (prev === null) {
    for (let i = 0; i < x.length; i++) out[i] = Math.fround(cx * x[i]) + Math.fround(cd * x0[i]);
  } else {
    const r = prev.h / h, k1 = 1 + 1 / (2 * r), k0 = 1 / (2 * r);
    for (let i = 0; i < x.length; i++) {
      const d = Math.fround(Math.fround(k1 * x0[i]) - Math.fround(k0 * prev.x0[i]));
      out[i] = Math.fround(cx * x[i]) + Math.fround(cd * d);
    }
  }
  return { x: out, prev: { x0, h } };
}

/** The distilled student's multistep consistency sampling (Song et al. 2023, Algorithm 1):
 *   x' = sqrt(abar') x0 + sqrt(1 - abar') eps', fresh eps';   at t' = -1: x0 itself. */
export function consistencyStep(sched, x0, tNext, randn) {
  if (tNext < 0) return x0;
  const an = sched.abarAt(tNext), c0 = Math.sqrt(an), c1 = Math.sqrt(1 - an);
  const z = randn(x0.length), out = new Float32Array(x0.length);
  for (let i = 0; i < x0.length; i++) out[i] = c0 * x0[i] + c1 * z[i];
  return out;
}

/** A sampler for one run, as samplers.make_sampler: {name, network, guided, timesteps(steps), step(...)}.
 * manifest: export.py's; randn(n): fresh N(0, 1) noise (the student's later steps). */
export function makeSampler(name, sched, manifest, randn) {
  if (name === "ddim") {
    return { name, network: "unet", guided: true, timesteps: (s) => timesteps(sched.T, s),
             step: (x, x0, eps, t, tn) => ddimStep(sched, x, x0, eps, t, tn) };
  }
  if (name === "dpmpp2m") {
    let prev = null;
    return { name, network: "unet", guided: true, timesteps: (s) => timesteps(sched.T, s),
             step: (x, x0, eps, t, tn) => { const r = dpmpp2mStep(sched, x, x0, t, tn, prev); prev = r.prev; return r.x; } };
  }
  if (name === "distilled") {
    const teacher = manifest.student_teacher_timesteps;
    return { name, network: "student", guided: false, timesteps: (s) => studentTimesteps(teacher, s).concat([-1]),
             step: (x, x0, eps, t, tn) => consistencyStep(sched, x0, tn, randn) };
  }
  throw new Error(`sampler must be dpmpp2m, ddim or distilled, not ${JSON.stringify(name)}`);
}

/** sampling.sample: ts = sampler.timesteps(steps); at each t: [x0, eps] = denoise(x, t),
 * x = sampler.step(x, x0, eps, t, t_next). onStep({i, t, tNext, x, x0}) after each step (awaited). */
export async function sample(denoise, sampler, x, steps, onStep) {
  const ts = sampler.timesteps(steps);
  for (let i = 0; i + 1 < ts.length; i++) {
    const { x0, eps } = await denoise(x, ts[i]);
    x = sampler.step(x, x0, eps, ts[i], ts[i + 1]);
    if (onStep) await onStep({ i, t: ts[i], tNext: ts[i + 1], x, x0, ts });
  }
  return x;
}
