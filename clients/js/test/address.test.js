// isValidAddress is the address grammar of docs/protocol.md §1 (src/proto/address.rs), the one
// check pages use before a name goes into a URL (the WebRTC demo's name and peer fields).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isValidAddress } from '../httpws.js';

const label = (n) => 'a'.repeat(n);

test('addresses: DNS host-name rules, ASCII case folded', () => {
  for (const ok of ['bob', 'Bob', 'BOB', 'team-a.bob', '0', 'a1-b2', label(63), [label(63), label(63), label(63), label(61)].join('.')]) {
    assert.equal(isValidAddress(ok), true, ok);
  }
  for (const bad of [
    '', '-bob', 'bob-', 'a..b', '.bob', 'bob.', 'a_b', 'a b', label(64),
    [label(63), label(63), label(63), label(62)].join('.'), // 254 characters
    'printer/admin/factory-reset?confirm=1', 'bob:80', 'bob#x', 'b%6fb',
    // Non-ASCII letters whose lower case is ASCII: KELVIN SIGN → k, and the dotted capital I.
    '\u212A', 'bo\u212Ab', '\u0130',
    null, undefined, 42, ['bob'],
  ]) {
    assert.equal(isValidAddress(bad), false, JSON.stringify(bad));
  }
});
