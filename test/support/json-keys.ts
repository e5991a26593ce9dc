/**
 * Keys that appear twice in one JSON object of a text. JSON.parse keeps the last value of a
 * repeated key, silently, which is exactly the defect this finds (a log line saying
 * "cluster":"eu-west" and later "cluster":"us-east"), so this reads the text itself. Returns the
 * repeated keys as paths (`a.b`, `items[0].name`); throws on text that is not JSON.
 */
export function duplicateKeys(text: string): string[] {
  let i = 0;
  const found: string[] = [];
  const fail = (what: string): never => {
    throw new Error(`not JSON at ${i}: ${what}: ${text.slice(Math.max(0, i - 20), i + 20)}`);
  };
  const space = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i] as string)) i++;
  };
  const string = (): string => {
    if (text[i] !== '"') fail('expected a string');
    let out = '';
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') {
        out += text.slice(i, i + 2);
        i += 2;
      } else out += text[i++];
    }
    if (text[i] !== '"') fail('unterminated string');
    i++;
    return out;
  };
  const value = (path: string): void => {
    space();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      space();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        space();
        const key = string();
        const at = path === '' ? key : `${path}.${key}`;
        if (seen.has(key)) found.push(at);
        seen.add(key);
        space();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        value(at);
        space();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return;
        } else fail('expected "," or "}"');
      }
    } else if (c === '[') {
      i++;
      space();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (let index = 0; ; index++) {
        value(`${path}[${index}]`);
        space();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return;
        } else fail('expected "," or "]"');
      }
    } else if (c === '"') string();
    else {
      const literal = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i));
      if (!literal) fail('expected a value');
      i += (literal as RegExpExecArray)[0].length;
    }
  };
  value('');
  space();
  if (i !== text.length) fail('text after the value');
  return found;
}
