// The model folder's public API (see docs/DESIGN.md, "model").
export { type ModelConfig, defaultFfnHidden, validateModelConfig, headDim } from './config.js';
export { type ParamTensor, planLayout, countParams } from './layout.js';
export { activationFloats, layerActivationFloats, keepsRecomputable, DEFAULT_KEEP_BUDGET_BYTES } from './activations.js';
export { GPT } from './gpt.js';
export { Generator, sampleToken, type SamplingOptions } from './generate.js';
export { flopsPerToken, attentionFlopsPerToken, mixerFlopsPerToken } from './flops.js';
export { runModelBench, measurePeakGflops, type ModelBenchOptions, type ModelBenchResult } from './bench.js';
export { profileKernels, type ProfileEntry, type ProfiledKernels } from './profile.js';
export { mulberry32, normalSampler } from './rng.js';
