import assert from "node:assert/strict";
import { ClientAddresses, parseAddressRange } from "./client_address.ts";

Deno.test("parseAddressRange reads addresses and CIDRs and refuses anything else", async (t) => {
  const cases: { entry: string; range: ReturnType<typeof parseAddressRange> }[] = [
    { entry: "10.0.0.1", range: { address: "10.0.0.1", prefix: 32, family: "ipv4" } },
    { entry: " 10.0.0.0/8 ", range: { address: "10.0.0.0", prefix: 8, family: "ipv4" } },
    { entry: "::1", range: { address: "::1", prefix: 128, family: "ipv6" } },
    { entry: "[::1]", range: { address: "::1", prefix: 128, family: "ipv6" } },
    { entry: "fd00::/8", range: { address: "fd00::", prefix: 8, family: "ipv6" } },
    { entry: "10.0.0.0/33", range: undefined },
    { entry: "::/129", range: undefined },
    { entry: "proxy.internal", range: undefined },
    { entry: "10.0.0.1:80", range: undefined },
    { entry: "", range: undefined },
  ];
  for (const { entry, range } of cases) {
    await t.step(JSON.stringify(entry), () => assert.deepEqual(parseAddressRange(entry), range));
  }
});

Deno.test("ClientAddresses refuses a trusted proxy that is not an address or CIDR", () => {
  assert.throws(() => new ClientAddresses(["10.0.0.1", "envoy"]), TypeError);
});

Deno.test("ClientAddresses resolve counts the peer itself when no proxy is trusted", async (t) => {
  const clients = new ClientAddresses();
  const cases = [
    { name: "IPv4 with a port", peer: "192.0.2.1:50000", expected: "192.0.2.1" },
    { name: "bare IPv4", peer: "192.0.2.1", expected: "192.0.2.1" },
    { name: "bracketed IPv6 with a port", peer: "[2001:DB8::1]:443", expected: "2001:db8::1" },
    { name: "bare IPv6", peer: "::1", expected: "::1" },
    { name: "IPv4-mapped IPv6", peer: "::ffff:192.0.2.1", expected: "192.0.2.1" },
    { name: "bracketed IPv4-mapped IPv6", peer: "[::FFFF:192.0.2.1]:8", expected: "192.0.2.1" },
    { name: "no peer (in-process calls)", peer: undefined, expected: "unknown" },
  ];
  for (const { name, peer, expected } of cases) {
    await t.step(name, () => {
      assert.equal(clients.resolve(peer, undefined), expected);
      // The header means nothing while no proxy is trusted.
      assert.equal(clients.resolve(peer, "198.51.100.7"), expected);
    });
  }
});

Deno.test("ClientAddresses resolve believes x-forwarded-for only from a trusted proxy", async (t) => {
  const clients = new ClientAddresses(["10.0.0.0/8", "127.0.0.1", "fd00::/8"]);
  const cases = [
    {
      name: "a trusted proxy forwards its client",
      peer: "10.1.2.3:5000",
      forwardedFor: "198.51.100.7",
      expected: "198.51.100.7",
    },
    {
      name: "an untrusted peer cannot choose who it is counted as",
      peer: "203.0.113.5:5000",
      forwardedFor: "198.51.100.7",
      expected: "203.0.113.5",
    },
    {
      name: "a value the client sent ahead of the proxy's is ignored",
      peer: "127.0.0.1:5000",
      forwardedFor: "192.0.2.99, 198.51.100.7",
      expected: "198.51.100.7",
    },
    {
      name: "a chain of trusted proxies is walked from the right",
      peer: "10.0.0.1",
      forwardedFor: "192.0.2.99, 198.51.100.7, 10.0.0.9, 10.0.0.8",
      expected: "198.51.100.7",
    },
    {
      name: "a chain of only trusted proxies ends at its leftmost one",
      peer: "10.0.0.1",
      forwardedFor: "10.0.0.9,10.0.0.8",
      expected: "10.0.0.9",
    },
    {
      name: "a hop that is not an address stops the walk at the last trusted one",
      peer: "10.0.0.1",
      forwardedFor: "198.51.100.7, unknown",
      expected: "10.0.0.1",
    },
    {
      name: "hops with ports and empty hops",
      peer: "10.0.0.1:1",
      forwardedFor: " , 198.51.100.7:4711 ,, ",
      expected: "198.51.100.7",
    },
    {
      name: "an IPv6 proxy forwards an IPv6 client",
      peer: "[fd00::1]:443",
      forwardedFor: "[2001:DB8::7]:1234",
      expected: "2001:db8::7",
    },
    {
      name: "a trusted proxy seen as IPv4-mapped IPv6 forwards a mapped client",
      peer: "::ffff:127.0.0.1",
      forwardedFor: "::ffff:198.51.100.7",
      expected: "198.51.100.7",
    },
    {
      name: "an IPv6 peer outside the trusted range is not believed",
      peer: "2001:db8::66",
      forwardedFor: "198.51.100.7",
      expected: "2001:db8::66",
    },
    {
      name: "a trusted proxy without the header is the client",
      peer: "10.0.0.1",
      forwardedFor: undefined,
      expected: "10.0.0.1",
    },
  ];
  for (const { name, peer, forwardedFor, expected } of cases) {
    await t.step(name, () => assert.equal(clients.resolve(peer, forwardedFor), expected));
  }
});

Deno.test("ClientAddresses isTrusted matches addresses with or without a port", () => {
  const clients = new ClientAddresses(["10.0.0.0/8", "::1"]);
  assert.equal(clients.isTrusted("10.255.0.1"), true);
  assert.equal(clients.isTrusted("10.255.0.1:80"), true);
  assert.equal(clients.isTrusted("[::1]:80"), true);
  assert.equal(clients.isTrusted("11.0.0.1"), false);
  assert.equal(clients.isTrusted("not an address"), false);
  assert.equal(new ClientAddresses().isTrusted("10.0.0.1"), false);
});
