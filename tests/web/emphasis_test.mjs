// web/emphasis.js (Ctrl+Up/Down in the prompt, as AUTOMATIC1111's edit-attention) without a browser: node --test.
import assert from "node:assert/strict";
import { test } from "node:test";
import { adjustEmphasis } from "../../web/emphasis.js";

// Applies the key to `text` with the selection marked by [ and ] (or a cursor |), returns the marked result.
function press(marked, up) {
  const cursor = marked.indexOf("|");
  let text, s, e;
  if (cursor >= 0) { text = marked.replace("|", ""); s = e = cursor; }
  else { s = marked.indexOf("["); e = marked.indexOf("]") - 1; text = marked.replace("[", "").replace("]", ""); }
  const r = adjustEmphasis(text, s, e, up);
  return r.text.slice(0, r.start) + "[" + r.text.slice(r.start, r.end) + "]" + r.text.slice(r.end);
}

test("plain selection is wrapped with 1.1 or 0.9", () => {
  assert.equal(press("a [red] fox", true), "a ([red]:1.1) fox");
  assert.equal(press("a [red] fox", false), "a ([red]:0.9) fox");
});
test("the weight steps by 0.1 and brackets go at 1", () => {
  assert.equal(press("a ([red]:1.1) fox", true), "a ([red]:1.2) fox");
  assert.equal(press("a ([red]:1.1) fox", false), "a [red] fox");
  assert.equal(press("a ([red]:0.9) fox", true), "a [red] fox");
  assert.equal(press("a ([red]:0.1) fox", false), "a ([red]:0.0) fox");
});
test("no selection: the weighted group around the cursor, else the word", () => {
  assert.equal(press("a (big r|ed:1.3) fox", true), "a ([big red]:1.4) fox");
  assert.equal(press("a red f|ox, snow", false), "a red ([fox]:0.9), snow");
  assert.equal(press("a red fox|", true), "a red ([fox]:1.1)");
});
test("a whole (text:w) selected, and spaces around the selection", () => {
  assert.equal(press("a [(red:1.5)] fox", false), "a ([red]:1.4) fox");
  assert.equal(press("a[ red ]fox", true), "a ([red]:1.1) fox");
});
test("nothing to weight leaves the text alone", () => {
  assert.equal(press("a  |  b", true), "a  []  b");
  assert.equal(press("|", true), "[]");
});
