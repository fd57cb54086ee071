import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena } from '../kernels/arena.js';
import { createJsKernels } from '../kernels/js/index.js';
import { GPT } from '../model/gpt.js';
import { randomIds, randomizeParams, tinyConfig } from '../model/testutil.js';
import type { ModelConfig } from '../model/config.js';
import { planLayout } from '../model/layout.js';
import { UserError } from '../util/errors.js';
import { fromLlamaTensors, llamaHfConfig, llamaTensorShapes, modelConfigFromHf, toLlamaTensors, type LlamaTensor } from './llama-weights.js';

function model(cfg: ModelConfig, B = 1, seed = 7): GPT {
  const m = new GPT(cfg, createJsKernels(), new HeapArena('f32'), B);
  randomizeParams(m, seed);
  return m;
}

const byName = (ts: LlamaTensor[]) => new Map(ts.map((t) => [t.name, t]));

for (const tie of [false, true]) {
  test(`toLlamaTensors -> fromLlamaTensors is bit-identical (tie_embeddings=${tie})`, () => {
    const cfg = tinyConfig({ tie_embeddings: tie });
    const m = model(cfg);
    const params = m.params as Float32Array;
    const ts = toLlamaTensors(cfg, params);
    assert.deepEqual(ts.map((t) => ({ name: t.name, shape: t.shape })), llamaTensorShapes(cfg));
    assert.equal(ts.some((t) => t.name === 'lm_head.weight'), !tie);
    assert.equal(ts.reduce((a, t) => a + t.data.length, 0), params.length);
    const back = new Float32Array(params.length).fill(NaN);
    fromLlamaTensors(cfg, byName(ts), back);
    assert.deepEqual(new Uint32Array(back.buffer), new Uint32Array(params.buffer));
  });
}

test('names, shapes and orientation: q_proj row i is wqkv column i, k and v follow, gate is the first half', () => {
  const cfg = tinyConfig(); // C = 8, F = 12, V = 11
  const C = cfg.d_model;
  const F = cfg.ffn_hidden;
  const params = new Float32Array(planLayout(cfg).numParams);
  for (let i = 0; i < params.length; i++) params[i] = i; // every value says where it came from
  const slot = new Map(planLayout(cfg).tensors.map((t) => [t.name, t]));
  const ts = byName(toLlamaTensors(cfg, params));
  const at = (name: string, r: number, c: number, cols: number) => ts.get(name)!.data[r * cols + c];
  const wqkv = slot.get('blocks.1.wqkv')!.offset;
  const wgu = slot.get('blocks.1.w_gate_up')!.offset;
  const wdown = slot.get('blocks.1.w_down')!.offset;
  assert.deepEqual(ts.get('model.layers.1.self_attn.q_proj.weight')!.shape, [C, C]);
  assert.deepEqual(ts.get('model.layers.1.mlp.gate_proj.weight')!.shape, [F, C]);
  assert.deepEqual(ts.get('model.layers.1.mlp.down_proj.weight')!.shape, [C, F]);
  for (let i = 0; i < C; i++) {
    for (let j = 0; j < C; j++) {
      // HF weight[out i][in j] = ours[in j][out i] = wqkv[j * 3C + i]
      assert.equal(at('model.layers.1.self_attn.q_proj.weight', i, j, C), wqkv + j * 3 * C + i);
      assert.equal(at('model.layers.1.self_attn.k_proj.weight', i, j, C), wqkv + j * 3 * C + C + i);
      assert.equal(at('model.layers.1.self_attn.v_proj.weight', i, j, C), wqkv + j * 3 * C + 2 * C + i);
    }
  }
  for (let i = 0; i < F; i++) {
    for (let j = 0; j < C; j++) {
      assert.equal(at('model.layers.1.mlp.gate_proj.weight', i, j, C), wgu + j * 2 * F + i);
      assert.equal(at('model.layers.1.mlp.up_proj.weight', i, j, C), wgu + j * 2 * F + F + i);
      assert.equal(at('model.layers.1.mlp.down_proj.weight', j, i, F), wdown + i * C + j);
    }
  }
  assert.equal(ts.get('model.embed_tokens.weight')!.data[3 * C + 2], slot.get('wte')!.offset + 3 * C + 2);
});

/**
 * An independent Llama forward written from the Hugging Face definition (LlamaForCausalLM:
 * RMSNorm, rotate_half RoPE, causal softmax attention, down(silu(gate(x)) * up(x))), in float64
 * from the [out, in] tensors. If a projection were swapped, transposed or the SiLU put on the
 * wrong half, its logits would differ from ours by far more than rounding.
 */
function llamaReferenceLogits(cfg: ModelConfig, t: Map<string, LlamaTensor>, ids: ArrayLike<number>): Float64Array[] {
  const C = cfg.d_model;
  const H = cfg.n_head;
  const D = C / H;
  const T = ids.length;
  const w = (n: string) => t.get(n)!.data;
  const linear = (W: Float32Array, x: Float64Array, out: number): Float64Array => {
    const inn = x.length;
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < inn; i++) s += W[o * inn + i]! * x[i]!;
      y[o] = s;
    }
    return y;
  };
  const rms = (x: Float64Array, g: Float32Array): Float64Array => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const r = 1 / Math.sqrt(ss / x.length + cfg.norm_eps);
    return x.map((v, i) => v * r * g[i]!);
  };
  const rope = (x: Float64Array, pos: number): Float64Array => {
    const y = new Float64Array(x.length);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < D; i++) {
        const k = i % (D / 2);
        const ang = pos * Math.pow(cfg.rope_theta, (-2 * k) / D);
        // x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1]
        const rot = i < D / 2 ? -x[h * D + i + D / 2]! : x[h * D + i - D / 2]!;
        y[h * D + i] = x[h * D + i]! * Math.cos(ang) + rot * Math.sin(ang);
      }
    }
    return y;
  };
  let hs = Array.from(ids, (id) => Float64Array.from(w('model.embed_tokens.weight').subarray(id * C, id * C + C)));
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `model.layers.${l}`;
    const xs = hs.map((h) => rms(h, w(`${p}.input_layernorm.weight`)));
    const q = xs.map((x, pos) => rope(linear(w(`${p}.self_attn.q_proj.weight`), x, C), pos));
    const k = xs.map((x, pos) => rope(linear(w(`${p}.self_attn.k_proj.weight`), x, C), pos));
    const v = xs.map((x) => linear(w(`${p}.self_attn.v_proj.weight`), x, C));
    hs = hs.map((h, tq) => {
      const att = new Float64Array(C);
      for (let hh = 0; hh < H; hh++) {
        const s = Array.from({ length: tq + 1 }, (_, tk) => {
          let d = 0;
          for (let i = 0; i < D; i++) d += q[tq]![hh * D + i]! * k[tk]![hh * D + i]!;
          return d / Math.sqrt(D);
        });
        const mx = Math.max(...s);
        const e = s.map((z) => Math.exp(z - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let tk = 0; tk <= tq; tk++) for (let i = 0; i < D; i++) att[hh * D + i] += (e[tk]! / z) * v[tk]![hh * D + i]!;
      }
      const o = linear(w(`${p}.self_attn.o_proj.weight`), att, C);
      return h.map((x, i) => x + o[i]!);
    });
    hs = hs.map((h) => {
      const x = rms(h, w(`${p}.post_attention_layernorm.weight`));
      const g = linear(w(`${p}.mlp.gate_proj.weight`), x, cfg.ffn_hidden);
      const u = linear(w(`${p}.mlp.up_proj.weight`), x, cfg.ffn_hidden);
      const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!);
      const d = linear(w(`${p}.mlp.down_proj.weight`), a, C);
      return h.map((x0, i) => x0 + d[i]!);
    });
  }
  const head = t.get('lm_head.weight') ?? t.get('model.embed_tokens.weight')!;
  return hs.map((h) => linear(head.data, rms(h, w('model.norm.weight')), cfg.vocab_size));
}

for (const tie of [false, true]) {
  test(`a Hugging Face style Llama forward on the exported tensors gives our logits (tie_embeddings=${tie})`, () => {
    const cfg = tinyConfig({ tie_embeddings: tie, seq_len: 6 });
    const m = model(cfg, 1, 3);
    // smaller weights keep the logits in a range where float32 rounding is far below the bound
    for (let i = 0; i < m.params.length; i++) m.params[i] = m.tensors.find((t) => i >= t.offset && i < t.offset + t.size)!.shape.length === 1 ? m.params[i]! : m.params[i]! * 0.5;
    const ids = randomIds(cfg.seq_len, cfg.vocab_size, 5);
    m.forward(ids, null, 1);
    const ours = m.logits();
    const ref = llamaReferenceLogits(cfg, byName(toLlamaTensors(cfg, m.params as Float32Array)), ids);
    let maxErr = 0;
    let maxAbs = 0;
    ref.forEach((row, t) => row.forEach((x, v) => {
      maxErr = Math.max(maxErr, Math.abs(x - ours[t * cfg.vocab_size + v]!));
      maxAbs = Math.max(maxAbs, Math.abs(x));
    }));
    assert.ok(maxAbs > 0.5, `logits too small to tell anything (${maxAbs})`);
    assert.ok(maxErr < 1e-4 * Math.max(1, maxAbs), `max |ours - reference| = ${maxErr} (logits up to ${maxAbs})`);
  });
}

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
}

test('fromLlamaTensors names a missing, extra or mis-shaped tensor', () => {
  const cfg = tinyConfig();
  const out = new Float32Array(planLayout(cfg).numParams);
  const good = () => byName(toLlamaTensors(cfg, new Float32Array(out.length)));
  const missing = good();
  missing.delete('model.layers.1.mlp.up_proj.weight');
  refused(() => fromLlamaTensors(cfg, missing, out), /^tensor "model\.layers\.1\.mlp\.up_proj\.weight" is missing$/);
  const extra = good();
  extra.set('model.layers.0.self_attn.q_proj.bias', { name: 'x', shape: [8], data: new Float32Array(8) });
  refused(() => fromLlamaTensors(cfg, extra, out), /"model\.layers\.0\.self_attn\.q_proj\.bias" is not part of this Llama model/);
  const shaped = good();
  shaped.set('model.layers.0.mlp.down_proj.weight', { name: 'x', shape: [12, 8], data: new Float32Array(96) });
  refused(() => fromLlamaTensors(cfg, shaped, out), /"model\.layers\.0\.mlp\.down_proj\.weight" has shape \[12, 8\], expected \[8, 12\]/);
  const untiedHead = good();
  refused(() => fromLlamaTensors({ ...cfg, tie_embeddings: true }, untiedHead, new Float32Array(planLayout({ ...cfg, tie_embeddings: true }).numParams)), /lm_head\.weight.*tie_word_embeddings is true/);
});

test('llamaHfConfig writes the Llama keys; modelConfigFromHf reads them back', () => {
  for (const tie of [false, true]) {
    const cfg = tinyConfig({ tie_embeddings: tie });
    const j = llamaHfConfig(cfg, { bosId: 10, eosId: 10 });
    assert.deepEqual(j.architectures, ['LlamaForCausalLM']);
    assert.equal(j.model_type, 'llama');
    assert.equal(j.tie_word_embeddings, tie);
    assert.equal(j.num_key_value_heads, cfg.n_head);
    assert.equal(j.max_position_embeddings, cfg.seq_len);
    assert.equal(j.hidden_act, 'silu');
    assert.equal(j.eos_token_id, 10);
    assert.deepEqual(modelConfigFromHf(JSON.parse(JSON.stringify(j)), 'config.json'), cfg);
  }
});

test('modelConfigFromHf refuses what we cannot represent, naming the field', () => {
  const base = llamaHfConfig(tinyConfig(), { bosId: 10, eosId: 10 });
  const refuse = (change: Record<string, unknown>, pattern: RegExp) => refused(() => modelConfigFromHf({ ...base, ...change }, 'x/config.json'), pattern);
  refuse({ num_key_value_heads: 1 }, /^x\/config\.json: num_key_value_heads = 1: grouped-query attention/);
  refuse({ attention_bias: true }, /attention_bias = true: biases/);
  refuse({ mlp_bias: true }, /mlp_bias = true: biases/);
  refuse({ hidden_act: 'gelu' }, /hidden_act = "gelu"/);
  refuse({ rope_scaling: { type: 'linear', factor: 2 } }, /rope_scaling = .*not supported/);
  refuse({ model_type: 'mistral' }, /model_type = "mistral"/);
  refuse({ architectures: ['MistralForCausalLM'] }, /architectures = \["MistralForCausalLM"\]/);
  refuse({ head_dim: 8 }, /head_dim = 8: must be hidden_size \/ num_attention_heads = 4/);
  refuse({ hidden_size: 'big' }, /hidden_size = "big": must be a positive integer/);
  refuse({ num_attention_heads: 3, num_key_value_heads: 3, head_dim: null }, /x\/config\.json: model\.d_model \(8\) must be a multiple/);
  // LlamaConfig's defaults apply to keys left out
  const { tie_word_embeddings: _t, rope_theta: _r, ...rest } = base;
  const cfg = modelConfigFromHf(rest, 'c');
  assert.equal(cfg.tie_embeddings, false);
  assert.equal(cfg.rope_theta, 10000);
});
