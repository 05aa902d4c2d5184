import { describe, expect, it } from 'vitest';
import { brandFromName, executeWebhookSchema, listingKey, normaliseKey, parseDate, parseListing, parsePrice, parseSizes } from '../../plugins/monitors/lib/parse.ts';
import { matchRoutes, parseRoutes } from '../../plugins/monitors/lib/routes.ts';
import { sign, signatureMatches, tokenMatches, sha256Hex } from '../../plugins/monitors/lib/tokens.ts';
import { footlockerPayload, shopifyPayload, snkrsPayload } from './fixtures.ts';

describe('monitor payload parsing', () => {
  it('GIVEN an SNKRS-style embed THEN name, url, thumbnail image, price, SKU, sizes, release date, region, brand', () => {
    const p = parseListing(executeWebhookSchema.parse(snkrsPayload('https://img.example/aj1.jpg')));
    expect(p).toMatchObject({
      name: 'Air Jordan 1 Retro High OG "Chicago Lost & Found"',
      url: 'https://www.nike.com/launch/t/air-jordan-1-chicago',
      imageUrl: 'https://img.example/aj1.jpg',
      price: { amount: 180, currency: 'USD' },
      sku: 'DZ5485-612',
      sizes: ['8', '8.5', '9', '10'],
      releaseDate: new Date(1764324000 * 1000).toISOString(),
      region: 'US',
      brand: 'jordan',
      monitor: 'SNKRS Monitor',
    });
  });
  it('GIVEN a Shopify-style embed THEN retail in EUR with a comma, style code, sizes with stock counts, store', () => {
    const p = parseListing(executeWebhookSchema.parse(shopifyPayload('https://img.example/samba.jpg')));
    expect(p).toMatchObject({ brand: 'adidas', retail: { amount: 100, currency: 'EUR' }, sku: 'B75806', sizes: ['US 8', 'US 9', 'US 10.5'], site: 'Kith', imageUrl: 'https://img.example/samba.jpg' });
  });
  it('GIVEN a Footlocker-style embed THEN author name, bold field names, lowest ask, PID, stock sizes', () => {
    const p = parseListing(executeWebhookSchema.parse(footlockerPayload('https://img.example/dunk.jpg')));
    expect(p).toMatchObject({ name: 'Nike Dunk Low Retro Panda', brand: 'nike', lowestAsk: { amount: 135, currency: 'GBP' }, price: { amount: 135 }, sku: '314207-100', sizes: ['42', '43'], region: 'GB' });
  });
  it('GIVEN an uploaded file and no image URL THEN the attachment is the image', () => {
    const p = parseListing(executeWebhookSchema.parse({ content: 'Yeezy 350 restock' }), ['shoe.jpg']);
    expect(p.imageUrl).toBe('attachment://shoe.jpg');
    expect(p.brand).toBe('adidas');
  });
  it.each([
    ['$1,250.50', 1250.5, 'USD'],
    ['€180,00', 180, 'EUR'],
    ['USD 99', 99, 'USD'],
    ['¥ 25000', 25000, 'JPY'],
  ])('GIVEN price %s THEN %d %s', (raw, amount, currency) => {
    expect(parsePrice(raw)).toMatchObject({ amount, currency });
  });
  it('GIVEN no digits THEN no price', () => expect(parsePrice('N/A')).toBeNull());
  it('GIVEN brand names with typos and sub-lines THEN the study’s four classes; Jordan beats Nike', () => {
    expect(brandFromName('Nike Air Jordan 1 Low')).toBe('jordan');
    expect(brandFromName('Adiddas Gazelle')).toBe('adidas');
    expect(brandFromName('Jordon 4 Retro')).toBe('jordan');
    expect(brandFromName('New Balance 550')).toBe('other');
    expect(brandFromName('Mystery Shoe')).toBeNull();
  });
  it('GIVEN emoji and punctuation in keys THEN they normalise', () => {
    expect(normaliseKey('💰 Lowest-Ask:')).toBe('lowest ask');
  });
  it('GIVEN sizes and dates in other shapes THEN parsed', () => {
    expect(parseSizes('7 • 7.5 • 8')).toEqual(['7', '7.5', '8']);
    expect(parseDate('2026-12-01')).toBe('2026-12-01T00:00:00.000Z');
  });
  it('GIVEN the same drop twice THEN the same dedupe key; another price THEN another key', () => {
    const a = parseListing(executeWebhookSchema.parse(snkrsPayload('https://x/a.jpg')));
    const b = parseListing(executeWebhookSchema.parse(snkrsPayload('https://x/b.jpg')));
    expect(listingKey(a)).toBe(listingKey(b));
    const c = { ...a, price: { amount: 200, currency: 'USD', raw: '$200' } };
    expect(listingKey(c)).not.toBe(listingKey(a));
  });
  it('GIVEN bodies Discord would refuse THEN the schema refuses them', () => {
    expect(executeWebhookSchema.safeParse({}).success).toBe(false);
    expect(executeWebhookSchema.safeParse({ embeds: Array.from({ length: 11 }, () => ({ title: 'x' })) }).success).toBe(false);
    expect(executeWebhookSchema.safeParse({ content: 'x'.repeat(2001) }).success).toBe(false);
    expect(executeWebhookSchema.safeParse({ embeds: [{ fields: Array.from({ length: 26 }, () => ({ name: 'a', value: 'b' })) }] }).success).toBe(false);
    expect(executeWebhookSchema.safeParse({ embeds: [{ description: 'x'.repeat(4000) }, { description: 'y'.repeat(2500) }] }).success).toBe(false);
  });
});

describe('routes', () => {
  it('GIVEN the compact form THEN rules; JSON works too; bad keys are BAD_INPUT', () => {
    expect(parseRoutes('channel=111111,keyword=dunk+jordan,min-hype=0.8,role=222222; channel=333333,brand=adidas')).toEqual([
      { channel: '111111', keywords: ['dunk', 'jordan'], minHype: 0.8, role: '222222' },
      { channel: '333333', brands: ['adidas'] },
    ]);
    expect(parseRoutes('[{"channel":"444444","brands":["nike"]}]')).toEqual([{ channel: '444444', brands: ['nike'] }]);
    expect(() => parseRoutes('channel=1,colour=red')).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    expect(() => parseRoutes('channel=abc')).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
  });
  it('GIVEN rules THEN matching channels once, else the default channel', () => {
    const routes = parseRoutes('channel=111111,keyword=dunk,min-hype=0.5,role=999999; channel=222222,brand=nike; channel=333333,brand=adidas');
    expect(matchRoutes(routes, { name: 'Nike Dunk Low', brand: 'nike', hypeProbability: 0.9 }, '555555')).toEqual([
      { channel: '111111', role: '999999' },
      { channel: '222222' },
    ]);
    expect(matchRoutes(routes, { name: 'Nike Dunk Low', brand: 'nike', hypeProbability: 0.2 }, '555555')).toEqual([{ channel: '222222' }]);
    expect(matchRoutes(routes, { name: 'Crocs', brand: 'other', hypeProbability: 0.2 }, '555555')).toEqual([{ channel: '555555' }]);
  });
});

describe('tokens', () => {
  it('GIVEN a token THEN only its hash matches; unknown ids never match', () => {
    expect(tokenMatches('abc', sha256Hex('abc'))).toBe(true);
    expect(tokenMatches('abd', sha256Hex('abc'))).toBe(false);
    expect(tokenMatches('abc', undefined)).toBe(false);
  });
  it('GIVEN a signature THEN it verifies only for the same body and timestamp', () => {
    const s = sign('secret', '1700000000', Buffer.from('{"a":1}'));
    expect(signatureMatches('secret', '1700000000', Buffer.from('{"a":1}'), s)).toBe(true);
    expect(signatureMatches('secret', '1700000001', Buffer.from('{"a":1}'), s)).toBe(false);
    expect(signatureMatches('secret', '1700000000', Buffer.from('{"a":2}'), s)).toBe(false);
  });
});
