/**
 * PNG output of the charts, rendered by resvg (@resvg/resvg-js, prebuilt binaries from the npm
 * registry), and a small reader of PNG files: the header (size, colour type) and the pixels of
 * the 8-bit non-interlaced images resvg and Chromium write, so tests can check an image's size
 * and that it is not blank.
 */
import zlib from 'node:zlib';
import { Resvg } from '@resvg/resvg-js';

/** Renders an SVG document to PNG bytes at its own size (or scaled to `width` px). */
export function svgToPng(svg: string, opts: { width?: number } = {}): Buffer {
  const r = new Resvg(svg, {
    background: '#ffffff',
    fitTo: opts.width ? { mode: 'width', value: opts.width } : { mode: 'original' },
    font: { loadSystemFonts: true, defaultFontFamily: 'sans-serif' },
  });
  return Buffer.from(r.render().asPng());
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface PngInfo {
  width: number;
  height: number;
  bitDepth: number;
  /** 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. */
  colorType: number;
  interlace: number;
}

/** The IHDR fields of a PNG; throws when `buf` is not a PNG. */
export function pngInfo(buf: Uint8Array): PngInfo {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 33 || !b.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG file (bad signature)');
  if (b.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG file (no IHDR chunk first)');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), bitDepth: b[24]!, colorType: b[25]!, interlace: b[28]! };
}

/** The pixels of an 8-bit RGB or RGBA non-interlaced PNG, as RGBA. */
export function decodePng(buf: Uint8Array): { width: number; height: number; rgba: Uint8Array } {
  const info = pngInfo(buf);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (info.bitDepth !== 8 || (info.colorType !== 2 && info.colorType !== 6) || info.interlace !== 0) {
    throw new Error(`decodePng reads 8-bit RGB(A) non-interlaced PNGs, not bit depth ${info.bitDepth} colour type ${info.colorType} interlace ${info.interlace}`);
  }
  const idat: Buffer[] = [];
  for (let off = 8; off + 8 <= b.length;) {
    const len = b.readUInt32BE(off);
    const type = b.toString('latin1', off + 4, off + 8);
    if (type === 'IDAT') idat.push(b.subarray(off + 8, off + 8 + len));
    if (type === 'IEND') break;
    off += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const bpp = info.colorType === 6 ? 4 : 3;
  const stride = info.width * bpp;
  const px = new Uint8Array(info.height * stride);
  for (let y = 0; y < info.height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? px[dst + i - bpp]! : 0;
      const up = y > 0 ? px[dst - stride + i]! : 0;
      const c = i >= bpp && y > 0 ? px[dst - stride + i - bpp]! : 0;
      const x = raw[src + i]!;
      let v: number;
      switch (filter) {
        case 0: v = x; break;
        case 1: v = x + a; break;
        case 2: v = x + up; break;
        case 3: v = x + ((a + up) >> 1); break;
        case 4: {
          const p = a + up - c;
          const pa = Math.abs(p - a), pb = Math.abs(p - up), pc = Math.abs(p - c);
          v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? up : c);
          break;
        }
        default: throw new Error(`bad PNG filter type ${filter} on row ${y}`);
      }
      px[dst + i] = v & 0xff;
    }
  }
  if (bpp === 4) return { width: info.width, height: info.height, rgba: px };
  const rgba = new Uint8Array(info.width * info.height * 4);
  for (let i = 0, j = 0; i < px.length; i += 3, j += 4) {
    rgba[j] = px[i]!; rgba[j + 1] = px[i + 1]!; rgba[j + 2] = px[i + 2]!; rgba[j + 3] = 255;
  }
  return { width: info.width, height: info.height, rgba };
}

/** Pixels whose colour is within `tolerance` (per channel) of `rgb`. */
export function countPixels(img: { rgba: Uint8Array }, rgb: readonly [number, number, number], tolerance = 24): number {
  let k = 0;
  const p = img.rgba;
  for (let i = 0; i < p.length; i += 4) {
    if (Math.abs(p[i]! - rgb[0]) <= tolerance && Math.abs(p[i + 1]! - rgb[1]) <= tolerance && Math.abs(p[i + 2]! - rgb[2]) <= tolerance) k++;
  }
  return k;
}
