// Ctrl+Up / Ctrl+Down in a prompt, as AUTOMATIC1111's web UI does it: the selection (or, with none, the weighted
// group around the cursor, else the word under it) gets its weight changed by one step. Plain text becomes
// "(text:1.1)" (or 0.9); an existing "(text:w)" moves to w ± step; a weight that reaches 1 loses its brackets.
// Pure function, so that it can be tested without a browser: returns the new text and the new selection, which
// covers the inner text so that the next key press changes the same group again.

const WORD_DELIMITERS = " \t\n.,\\/!?%^*;:{}=`~()[]<>|";
const WEIGHT_AFTER = /^:(-?\d+(?:\.\d+)?)\)/;

function decimalsOf(step) {
  const s = String(step);
  const dot = s.indexOf(".");
  return dot < 0 ? 0 : s.length - dot - 1;
}

// The "(inner:w)" group whose brackets enclose `pos`, as the span of `inner`; null if there is none.
function enclosingGroup(text, pos) {
  let depth = 0;
  let open = -1;
  for (let i = pos - 1; i >= 0; --i) {
    const c = text[i];
    if (c === ")") depth++;
    else if (c === "(") {
      if (depth === 0) { open = i; break; }
      depth--;
    }
  }
  if (open < 0) return null;
  depth = 0;
  let close = -1;
  for (let i = open + 1; i < text.length; ++i) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") {
      if (depth === 0) { close = i; break; }
      depth--;
    }
  }
  if (close < 0 || close < pos) return null;
  const colon = text.lastIndexOf(":", close);
  if (colon <= open || !WEIGHT_AFTER.test(text.slice(colon, close + 1))) return null;
  return { start: open + 1, end: colon };
}

function wordAt(text, pos) {
  let start = pos;
  let end = pos;
  while (start > 0 && !WORD_DELIMITERS.includes(text[start - 1])) start--;
  while (end < text.length && !WORD_DELIMITERS.includes(text[end])) end++;
  return start === end ? null : { start, end };
}

export function adjustEmphasis(text, selStart, selEnd, up, step = 0.1) {
  let start = Math.min(selStart, selEnd);
  let end = Math.max(selStart, selEnd);
  if (start === end) {
    const span = enclosingGroup(text, start) || wordAt(text, start);
    if (!span) return { text, start: selStart, end: selEnd };
    ({ start, end } = span);
  }
  while (start < end && /\s/.test(text[start])) start++;
  while (end > start && /\s/.test(text[end - 1])) end--;
  if (start === end) return { text, start: selStart, end: selEnd };

  // A whole "(inner:w)" selected: work on its inner text.
  const selected = text.slice(start, end);
  const whole = /^\(([\s\S]*):(-?\d+(?:\.\d+)?)\)$/.exec(selected);
  if (whole && text[start] === "(") {
    start += 1;
    end = start + whole[1].length;
  }

  const decimals = decimalsOf(step);
  const after = text.slice(end);
  const weighted = text[start - 1] === "(" && WEIGHT_AFTER.exec(after);
  if (weighted) {
    const w = Number(weighted[1]) + (up ? step : -step);
    const rounded = Number(w.toFixed(decimals));
    const inner = text.slice(start, end);
    const before = text.slice(0, start - 1);
    const rest = after.slice(weighted[0].length);
    if (rounded === 1) {
      return { text: before + inner + rest, start: start - 1, end: end - 1 };
    }
    return { text: before + "(" + inner + ":" + rounded.toFixed(decimals) + ")" + rest, start, end };
  }
  const w = (1 + (up ? step : -step)).toFixed(decimals);
  const inner = text.slice(start, end);
  return {
    text: text.slice(0, start) + "(" + inner + ":" + w + ")" + text.slice(end),
    start: start + 1,
    end: end + 1,
  };
}
