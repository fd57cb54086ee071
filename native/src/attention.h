/* Fused causal attention on float32 buffers (see attention.c); 0 on success, -1 when scratch could not be allocated. */
#ifndef POCKETLM_ATTENTION_H
#define POCKETLM_ATTENTION_H

int attention_causal_forward(float *out, float *lse, const float *qkv, int B, int T, int H, int D, float scale);
int attention_causal_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse, int B, int T,
                              int H, int D, float scale);

#endif
