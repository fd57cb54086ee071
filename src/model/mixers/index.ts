import { mixerName, type MixerName, type ModelConfig } from '../config.js';
import { attentionMixer } from './attention-mixer.js';
import type { Mixer } from './mixer.js';
import { rwkvMixer } from './rwkv-mixer.js';

export type { Mixer, MixerDecoder, MixerLayer, MixerParam, InitKind } from './mixer.js';

/** Every mixer by its model.mixer name. */
const MIXER_TABLE: Record<MixerName, Mixer> = {
  attention: attentionMixer,
  rwkv: rwkvMixer,
};

/** The mixer a model config names (absent: attention). */
export function mixerFor(cfg: ModelConfig): Mixer {
  return MIXER_TABLE[mixerName(cfg)];
}
