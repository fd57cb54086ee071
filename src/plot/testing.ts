/**
 * Test helpers for the charts: a strict parser for the subset of XML the SVG charts use (throws
 * on anything malformed), and element queries.
 */
export interface El {
  name: string;
  attrs: Record<string, string>;
  children: El[];
  text: string;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '<') throw new Error(`raw < at ${i}`);
    if (s[i] !== '&') { out += s[i]; continue; }
    const end = s.indexOf(';', i);
    if (end < 0) throw new Error(`unterminated entity at ${i}`);
    const name = s.slice(i + 1, end);
    if (name in ENTITIES) out += ENTITIES[name];
    else if (name.startsWith('#x')) out += String.fromCodePoint(parseInt(name.slice(2), 16));
    else if (name.startsWith('#')) out += String.fromCodePoint(parseInt(name.slice(1), 10));
    else throw new Error(`unknown entity &${name};`);
    i = end;
  }
  return out;
}

const isNameChar = (c: string) => /[A-Za-z0-9_:.-]/.test(c);

/** A strict parser for the subset of XML the chart uses: one optional declaration, elements, attributes in quotes, text with entities. Throws on anything malformed. */
export function parseXml(src: string): El {
  let i = 0;
  if (src.startsWith('<?xml')) {
    i = src.indexOf('?>') + 2;
    if (i < 2) throw new Error('unterminated declaration');
  }
  const skipWs = () => { while (i < src.length && /\s/.test(src[i])) i++; };
  const readName = () => {
    const s = i;
    while (i < src.length && isNameChar(src[i])) i++;
    if (i === s) throw new Error(`name expected at ${i}`);
    return src.slice(s, i);
  };
  const parseElement = (): El => {
    if (src[i] !== '<') throw new Error(`< expected at ${i}`);
    i++;
    const el: El = { name: readName(), attrs: {}, children: [], text: '' };
    for (;;) {
      skipWs();
      if (src.startsWith('/>', i)) { i += 2; return el; }
      if (src[i] === '>') { i++; break; }
      const an = readName();
      if (an in el.attrs) throw new Error(`duplicate attribute ${an}`);
      skipWs();
      if (src[i] !== '=') throw new Error(`= expected at ${i}`);
      i++;
      skipWs();
      const q = src[i];
      if (q !== '"' && q !== "'") throw new Error(`quote expected at ${i}`);
      const end = src.indexOf(q, i + 1);
      if (end < 0) throw new Error('unterminated attribute');
      el.attrs[an] = decode(src.slice(i + 1, end));
      i = end + 1;
    }
    for (;;) {
      const lt = src.indexOf('<', i);
      if (lt < 0) throw new Error(`unclosed <${el.name}>`);
      el.text += decode(src.slice(i, lt));
      i = lt;
      if (src.startsWith('</', i)) {
        i += 2;
        const close = readName();
        if (close !== el.name) throw new Error(`</${close}> closes <${el.name}>`);
        skipWs();
        if (src[i] !== '>') throw new Error(`> expected at ${i}`);
        i++;
        return el;
      }
      el.children.push(parseElement());
    }
  };
  skipWs();
  const root = parseElement();
  skipWs();
  if (i !== src.length) throw new Error(`content after the root element at ${i}`);
  return root;
}

export function all(el: El, pred: (e: El) => boolean, out: El[] = []): El[] {
  if (pred(el)) out.push(el);
  for (const c of el.children) all(c, pred, out);
  return out;
}

export const hasClass = (e: El, c: string) => (e.attrs.class ?? '').split(' ').includes(c);


/** The y axis of a chart as a function pixel -> value, fitted through its first and last y tick labels. */
export function yValueOf(root: El): (y: number) => number {
  const ticks = all(root, (e) => hasClass(e, 'y-tick')).map((e) => [Number(e.attrs['data-y']), Number(e.attrs['data-value'])] as const);
  if (ticks.length < 2) throw new Error('fewer than two y ticks');
  const [ya, va] = ticks[0]!;
  const [yb, vb] = ticks[ticks.length - 1]!;
  return (y) => va + ((y - ya) * (vb - va)) / (yb - ya);
}
